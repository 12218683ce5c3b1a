//! `apply` and `run` through the fault-injecting proxy: throttling, 5xx,
//! resets, latency and lost answers after moto applied a write.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::faultproxy::{Fault, FaultProxy, Faults};
use crate::harness::*;

/// The writes apply makes whose lost answer is dangerous: a blind retry would
/// duplicate or overwrite.
const WRITES: &[&str] =
    &["PutParameter", "CreateSecret", "CreateRole", "PutRolePolicy", "RegisterTaskDefinition", "UpdateService"];

/// 25% throttling and 5% lost answers, as the issue names them, plus some 5xx,
/// resets and latency.
pub fn harsh(lose_first: &[&'static str]) -> Faults {
    Faults {
        throttle: 0.25,
        server_error: 0.03,
        unavailable: 0.02,
        latency: 0.05,
        latency_by: Duration::from_millis(150),
        reset: 0.03,
        lost_answer: 0.05,
        lose_first: lose_first.to_vec(),
        ..Faults::default()
    }
}

/// What apply leaves in the account, with no value in it and the random parts
/// (secret ARN suffixes, KMS key ids, revision numbers) named instead.
pub async fn account_state(sdk: &aws_config::SdkConfig) -> (Value, BTreeMap<String, usize>) {
    let ssm = aws_sdk_ssm::Client::new(sdk);
    let sm = aws_sdk_secretsmanager::Client::new(sdk);
    let iam = aws_sdk_iam::Client::new(sdk);
    let ecs = aws_sdk_ecs::Client::new(sdk);
    let kms = aws_sdk_kms::Client::new(sdk);
    let mut renames: Vec<(String, String)> = Vec::new();

    let mut parameters = serde_json::Map::new();
    let mut next = None;
    loop {
        let out = ssm.describe_parameters().set_next_token(next).send().await.unwrap();
        for p in out.parameters() {
            let name = p.name().unwrap();
            let tags = parameter_tags(sdk, name).await;
            parameters.insert(
                name.into(),
                json!({"type": p.r#type().map(|t| t.as_str()), "keyId": p.key_id(), "description": p.description(),
                       "version": p.version(), "tags": tags}),
            );
        }
        next = out.next_token().map(str::to_string);
        if next.is_none() {
            break;
        }
    }

    let mut secrets = serde_json::Map::new();
    for s in sm.list_secrets().send().await.unwrap().secret_list() {
        let name = s.name().unwrap();
        renames.push((s.arn().unwrap().to_string(), format!("<secret {name}>")));
        let versions = sm.list_secret_version_ids().secret_id(name).send().await.unwrap().versions().len();
        let tags: BTreeMap<_, _> = s.tags().iter().map(|t| (t.key().unwrap_or_default(), t.value())).collect();
        secrets.insert(
            name.into(),
            json!({"kmsKeyId": s.kms_key_id(), "description": s.description(), "versions": versions, "tags": tags}),
        );
    }

    let mut roles = serde_json::Map::new();
    for r in iam.list_roles().send().await.unwrap().roles() {
        let name = r.role_name();
        let mut inline = serde_json::Map::new();
        for p in iam.list_role_policies().role_name(name).send().await.unwrap().policy_names() {
            let doc = iam.get_role_policy().role_name(name).policy_name(p).send().await.unwrap();
            inline.insert(p.clone(), document(doc.policy_document()));
        }
        let attached: Vec<String> = iam
            .list_attached_role_policies()
            .role_name(name)
            .send()
            .await
            .unwrap()
            .attached_policies()
            .iter()
            .filter_map(|p| p.policy_arn().map(str::to_string))
            .collect();
        let tags = iam.list_role_tags().role_name(name).send().await.unwrap();
        let tags: BTreeMap<_, _> = tags.tags().iter().map(|t| (t.key(), t.value())).collect();
        roles.insert(
            name.into(),
            json!({"trust": r.assume_role_policy_document().map(document), "inline": inline,
                   "attached": attached, "tags": tags}),
        );
    }

    let mut services = serde_json::Map::new();
    let mut families = BTreeMap::new();
    for svc in ["web", "worker"] {
        let out = ecs.describe_services().cluster("prod").services(svc).send().await.unwrap();
        let td_id = out.services()[0].task_definition().unwrap().to_string();
        let td = ecs.describe_task_definition().task_definition(&td_id).send().await.unwrap();
        let td = td.task_definition().unwrap();
        let containers: Vec<Value> = td
            .container_definitions()
            .iter()
            .map(|c| {
                json!({
                    "name": c.name(),
                    "secrets": c.secrets().iter().map(|s| json!([s.name(), s.value_from()])).collect::<Vec<_>>(),
                    "logSecrets": c.log_configuration().map(|l| l.secret_options().iter()
                        .map(|s| json!([s.name(), s.value_from()])).collect::<Vec<_>>()),
                    "repositoryCredentials": c.repository_credentials().map(|r| r.credentials_parameter()),
                })
            })
            .collect();
        services.insert(
            svc.into(),
            json!({"family": td.family(), "executionRoleArn": td.execution_role_arn(),
                   "taskRoleArn": td.task_role_arn(), "containers": containers}),
        );
        let family = td.family().unwrap().to_string();
        let revs = ecs.list_task_definitions().family_prefix(&family).send().await.unwrap();
        families.insert(family, revs.task_definition_arns().len());
    }

    for a in kms.list_aliases().send().await.unwrap().aliases() {
        if let (Some(alias), Some(key)) = (a.alias_name(), a.target_key_id()) {
            renames.push((format!("arn:aws:kms:us-east-1:123456789012:key/{key}"), format!("<key {alias}>")));
            renames.push((key.to_string(), format!("<key {alias}>")));
        }
    }
    let mut text =
        json!({"parameters": parameters, "secrets": secrets, "roles": roles, "services": services}).to_string();
    for (from, to) in renames {
        text = text.replace(&from, &to);
    }
    (serde_json::from_str(&text).unwrap(), families)
}

/// Real IAM URL-encodes documents; moto does not. The product's decoder reads both.
fn document(doc: &str) -> Value {
    secretwire::policy::decode_document(doc).unwrap_or_else(|e| panic!("policy document: {e}"))
}

/// The example repo applied with no faults, on its own emulator: the reference.
pub async fn reference_state() -> (Value, BTreeMap<String, usize>) {
    let moto = Moto::start();
    moto.bootstrap();
    let repo = example_repo();
    moto.secretwire(&["apply", "-m", &repo.path().display().to_string()], &demo_env()).assert_code(0);
    account_state(&moto.sdk().await).await
}

/// Asserts the account converged to the reference, with the guarantees the
/// issue names, and that a following apply writes nothing.
pub async fn assert_converged(moto: &Moto, repo: &tempfile::TempDir, reference: &(Value, BTreeMap<String, usize>)) {
    let (state, families) = account_state(&moto.sdk().await).await;
    assert_eq!(state, reference.0, "same AWS state as a fault-free apply (no duplicate, no overwritten value)");
    for (family, n) in &families {
        let want = reference.1[family];
        assert!(*n <= want + 1, "family {family}: {n} revisions, a fault-free apply leaves {want}");
    }
    let again = moto.secretwire(&["apply", "-m", &repo.path().display().to_string(), "--output", "json"], &demo_env());
    again.assert_code(0);
    assert_eq!(again.json()["awsWriteCount"], 0, "a following apply writes nothing:\n{}", again.stdout);
}

#[tokio::test]
async fn apply_under_throttling_5xx_and_lost_answers_converges_like_a_fault_free_apply() {
    let reference = reference_state().await;
    let moto = Moto::start();
    moto.bootstrap();
    let proxy = FaultProxy::start(moto.endpoint(), harsh(WRITES), 0x5EC2E7);
    let repo = example_repo();
    let mut cmd = moto.command();
    cmd.env("AWS_ENDPOINT_URL", &proxy.url).env("REGISTRY_CREDENTIALS", REGISTRY_CREDENTIALS);
    let run =
        Run::from(cmd.args(["apply", "-m", &repo.path().display().to_string(), "--output", "json"]).output().unwrap());
    run.assert_code(0);

    // The faults happened, including a lost answer to each kind of write.
    assert!(proxy.count(Fault::Throttle) >= 3, "throttled: {}", proxy.count(Fault::Throttle));
    let lost = proxy.lost_writes();
    for op in ["PutParameter", "CreateSecret", "CreateRole", "PutRolePolicy", "RegisterTaskDefinition"] {
        assert!(lost.iter().any(|l| l.ends_with(op)), "a lost answer to {op}: {lost:?}");
    }
    assert_converged(&moto, &repo, &reference).await;
    // Exactly what a fault-free apply registers: the lost answer cost no spare revision.
    let (_, families) = account_state(&moto.sdk().await).await;
    assert_eq!(families, reference.1, "no spare task definition revision");
}

/// A rotation (value written, event published) of web/api.
pub async fn rotate(sdk: &aws_config::SdkConfig, n: usize) {
    let sm = aws_sdk_secretsmanager::Client::new(sdk);
    let v = json!({"username": "api", "password": format!("rotated-{n}-Qx81vB0p")}).to_string();
    sm.put_secret_value().secret_id("web/api").secret_string(v).send().await.unwrap();
    publish_rotation(sdk, &secret_arn(sdk, "web/api").await).await;
}

#[tokio::test]
async fn run_under_faults_redeploys_once_per_rotation_and_loses_no_message() {
    let (moto, repo, sdk) = rolled_out_example().await;
    let proxy =
        FaultProxy::start(moto.endpoint(), harsh(&["UpdateService", "ReceiveMessage", "DeleteMessageBatch"]), 7);
    let mut cmd = moto.command();
    cmd.env("AWS_ENDPOINT_URL", &proxy.url);
    let run = start_run_with(
        cmd,
        repo.path(),
        // A message whose receive answer was lost comes back after 5 s.
        &["--debounce", "0s", "--visibility-timeout", "5s", "--failure-backoff", "1s"],
    );
    run.wait_for("readiness under faults", Duration::from_secs(90), |r| r.get("/readyz").0 == 200);
    assert_eq!(proxy.deployments_started("web"), 0, "nothing stale after a roll-out:\n{}", run.log());

    let rotations = 3;
    for n in 1..=rotations {
        rotate(&sdk, n).await;
        run.wait_for("the redeploy for this rotation", Duration::from_secs(90), |_| {
            proxy.deployments_started("web") >= n
        });
        // The next rotation is a distinct second later (event times have one-second precision).
        tick_past_a_second();
    }
    // Every message is consumed: none lost in flight, none left behind.
    let end = Instant::now() + Duration::from_secs(60);
    while queue_depth(&sdk, "secretwire-default-events").await > 0 {
        assert!(Instant::now() < end, "messages left on the queue\n{}", run.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(queue_depth(&sdk, "secretwire-default-events-dlq").await, 0, "nothing dead-lettered");
    assert_eq!(proxy.deployments_started("web"), rotations, "one deployment per rotation:\n{}", run.log());
    assert_eq!(proxy.deployments_started("worker"), 0, "worker does not read web/api");
    assert!(proxy.count(Fault::Throttle) >= 3);
    let lost: Vec<_> = proxy.calls().into_iter().filter(|c| c.fault == Some(Fault::LostAnswer)).collect();
    for op in ["UpdateService", "ReceiveMessage", "DeleteMessageBatch"] {
        assert!(lost.iter().any(|c| c.operation == op), "a lost answer to {op}");
    }
    assert!(
        lost.iter().any(|c| c.operation == "UpdateService" && c.applied && c.forced_service.is_some()),
        "a forced deployment whose answer was lost"
    );
    let (code, _) = run.stop();
    assert_eq!(code, 0);
}
