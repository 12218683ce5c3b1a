//! `apply`, `plan`, `render` against moto: SPEC §2 read back through the SDK.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::harness::*;

const ACCOUNT: &str = "123456789012";

fn path_arg(dir: &tempfile::TempDir) -> String {
    dir.path().display().to_string()
}

async fn role_policy(iam: &aws_sdk_iam::Client, role: &str) -> Value {
    let p = iam.get_role_policy().role_name(role).policy_name("secretwire").send().await.unwrap();
    secretwire::policy::decode_document(p.policy_document()).unwrap()
}

async fn trust(iam: &aws_sdk_iam::Client, role: &str) -> Value {
    let r = iam.get_role().role_name(role).send().await.unwrap();
    secretwire::policy::decode_document(r.role().unwrap().assume_role_policy_document().unwrap()).unwrap()
}

async fn task_definition(sdk: &aws_config::SdkConfig, id: &str) -> aws_sdk_ecs::types::TaskDefinition {
    let ecs = aws_sdk_ecs::Client::new(sdk);
    ecs.describe_task_definition().task_definition(id).send().await.unwrap().task_definition.unwrap()
}

async fn service_task_definition(sdk: &aws_config::SdkConfig, name: &str) -> String {
    let ecs = aws_sdk_ecs::Client::new(sdk);
    let out = ecs.describe_services().cluster("prod").services(name).send().await.unwrap();
    secretwire::arn::task_definition_short(out.services()[0].task_definition().unwrap()).to_string()
}

async fn revisions(sdk: &aws_config::SdkConfig, family: &str) -> usize {
    let ecs = aws_sdk_ecs::Client::new(sdk);
    ecs.list_task_definitions().family_prefix(family).send().await.unwrap().task_definition_arns().len()
}

async fn secret_arn(sdk: &aws_config::SdkConfig, name: &str) -> String {
    let sm = aws_sdk_secretsmanager::Client::new(sdk);
    sm.describe_secret().secret_id(name).send().await.unwrap().arn().unwrap().to_string()
}

#[tokio::test]
async fn fresh_apply_creates_what_the_spec_lists_and_a_second_apply_writes_nothing() {
    let moto = Moto::start();
    moto.bootstrap();
    let sdk = moto.sdk().await;
    let repo = example_repo();
    let run = moto.secretwire(&["apply", "-m", &path_arg(&repo), "--output", "json"], &demo_env());
    run.assert_code(0);
    assert!(run.json()["awsWriteCount"].as_u64().unwrap() > 0);

    // 1. Parameters and secrets exist, tagged as owned.
    let ssm = aws_sdk_ssm::Client::new(&sdk);
    let p = ssm.describe_parameters().send().await.unwrap();
    let param = p.parameters().iter().find(|p| p.name() == Some("/web/database-password")).expect("parameter created");
    assert_eq!(param.r#type().unwrap().as_str(), "SecureString");
    let tags = parameter_tags(&sdk, "/web/database-password").await;
    assert_eq!(tags["secretwire.dev/managed-by"], "default");
    assert_eq!(tags["secretwire.dev/source"], "Parameter//web/database-password");
    let sm = aws_sdk_secretsmanager::Client::new(&sdk);
    for name in ["web/api", "web/splunk-token", "registry/dockerhub"] {
        let d = sm.describe_secret().secret_id(name).send().await.unwrap();
        let tags: BTreeMap<_, _> = d.tags().iter().map(|t| (t.key().unwrap(), t.value().unwrap())).collect();
        assert_eq!(tags["secretwire.dev/managed-by"], "default", "{name}");
        assert_eq!(tags["secretwire.dev/source"], format!("Secret/{name}"));
    }
    let kms = aws_sdk_kms::Client::new(&sdk);
    let key_arn = kms.describe_key().key_id("alias/web").send().await.unwrap().key_metadata.unwrap().arn.unwrap();
    let splunk = sm.describe_secret().secret_id("web/splunk-token").send().await.unwrap();
    assert!(splunk.kms_key_id().is_some(), "customer managed key applied to the secret");

    // 2./3. Roles: confused-deputy-safe trust, least-privilege inline policy with exact ARNs.
    let iam = aws_sdk_iam::Client::new(&sdk);
    let exec_trust = trust(&iam, "web-execution").await;
    let st = &exec_trust["Statement"][0];
    assert_eq!(st["Principal"]["Service"], "ecs-tasks.amazonaws.com");
    assert_eq!(st["Condition"]["StringEquals"]["aws:SourceAccount"], ACCOUNT);
    let task_trust = trust(&iam, "web-task").await;
    assert_eq!(
        task_trust["Statement"][0]["Condition"]["ArnLike"]["aws:SourceArn"],
        format!("arn:aws:ecs:us-east-1:{ACCOUNT}:*")
    );
    let api_arn = secret_arn(&sdk, "web/api").await;
    let splunk_arn = secret_arn(&sdk, "web/splunk-token").await;
    let param_arn = format!("arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/web/database-password");
    let policy = role_policy(&iam, "web-execution").await;
    let by_sid = |sid: &str| {
        policy["Statement"].as_array().unwrap().iter().find(|s| s["Sid"] == sid).cloned().unwrap_or(Value::Null)
    };
    assert_eq!(by_sid("ReadParameters")["Resource"], serde_json::json!([param_arn]));
    let mut want_secrets = vec![api_arn.clone(), splunk_arn.clone()];
    want_secrets.sort();
    assert_eq!(by_sid("ReadSecrets")["Resource"], serde_json::json!(want_secrets));
    assert_eq!(by_sid("DecryptParameters")["Resource"], serde_json::json!([key_arn]));
    assert_eq!(
        by_sid("DecryptParameters")["Condition"]["StringEquals"]["kms:ViaService"],
        "ssm.us-east-1.amazonaws.com"
    );
    assert_eq!(
        by_sid("DecryptSecrets")["Condition"]["StringEquals"]["kms:ViaService"],
        "secretsmanager.us-east-1.amazonaws.com"
    );
    assert!(!policy.to_string().contains("\"*\""), "no wildcard resources: {policy}");
    let attached = iam.list_attached_role_policies().role_name("web-execution").send().await.unwrap();
    assert_eq!(attached.attached_policies()[0].policy_name(), Some("AmazonECSTaskExecutionRolePolicy"));
    let worker_policy = role_policy(&iam, "worker-execution").await;
    let registry_arn = secret_arn(&sdk, "registry/dockerhub").await;
    assert!(worker_policy.to_string().contains(&registry_arn), "repositoryCredentials granted: {worker_policy}");

    // 4. Task definitions: wiring replaced, every other field kept (template base and live base).
    assert_eq!(service_task_definition(&sdk, "web").await, "web:2");
    let web = task_definition(&sdk, "web:2").await;
    assert_eq!(web.execution_role_arn(), Some(format!("arn:aws:iam::{ACCOUNT}:role/web-execution").as_str()));
    assert_eq!(web.task_role_arn(), Some(format!("arn:aws:iam::{ACCOUNT}:role/web-task").as_str()));
    assert_eq!(web.cpu(), Some("256"));
    let c = &web.container_definitions()[0];
    let secrets: Vec<(&str, &str)> = c.secrets().iter().map(|s| (s.name(), s.value_from())).collect();
    assert_eq!(
        secrets,
        vec![
            ("DATABASE_PASSWORD", param_arn.as_str()),
            ("API_USER", format!("{api_arn}:username::").as_str()),
            ("API_PASSWORD", format!("{api_arn}:password::").as_str()),
        ]
    );
    let log = c.log_configuration().unwrap();
    assert_eq!(log.secret_options()[0].value_from(), splunk_arn);
    assert_eq!(log.options().unwrap()["splunk-url"], "https://splunk.example.internal:8088", "template field kept");
    assert_eq!(c.environment()[0].name(), Some("APP_ENV"), "template field kept");
    assert_eq!(c.port_mappings()[0].container_port(), Some(80));

    assert_eq!(service_task_definition(&sdk, "worker").await, "worker:2");
    let worker = task_definition(&sdk, "worker:2").await;
    let w = &worker.container_definitions()[0];
    assert_eq!(w.repository_credentials().unwrap().credentials_parameter(), registry_arn);
    assert_eq!(w.command(), ["worker", "--queue", "orders"], "live-revision field kept");
    assert_eq!(w.image(), Some("registry.example.com/acme/worker:1.4.2"));
    assert_eq!(worker.memory(), Some("1024"));

    // Idempotence: the second apply makes zero writes and registers nothing.
    let again = moto.secretwire(&["apply", "-m", &path_arg(&repo), "--output", "json"], &demo_env());
    again.assert_code(0);
    let j = again.json();
    assert_eq!(j["awsWriteCount"], 0, "second apply wrote: {}", j["awsCalls"]);
    assert!(j["awsCallCount"].as_u64().unwrap() > 0, "it did read");
    // The services still run what apply deployed (tag secretwire.dev/applied): no revision is read.
    assert!(j["awsCalls"].get("ECS:DescribeTaskDefinition").is_none(), "{}", j["awsCalls"]);
    let ecs = aws_sdk_ecs::Client::new(&sdk);
    let svc = ecs
        .describe_services()
        .cluster("prod")
        .services("web")
        .include(aws_sdk_ecs::types::ServiceField::Tags)
        .send()
        .await
        .unwrap();
    let applied = svc.services()[0].tags().iter().find(|t| t.key() == Some("secretwire.dev/applied")).unwrap();
    assert!(applied.value().unwrap().starts_with("web:2 "), "{applied:?}");
    assert_eq!(revisions(&sdk, "web").await, 2);
    let plan = moto.secretwire(&["plan", "-m", &path_arg(&repo), "--detailed-exitcode"], &demo_env());
    plan.assert_code(0);
    assert!(plan.stdout.contains("No changes."), "{}", plan.stdout);

    // render prints what apply registered.
    let render = moto.secretwire(&["render", "-m", &path_arg(&repo), "web"], &demo_env());
    render.assert_code(0);
    let rendered = render.json();
    assert_eq!(rendered["containerDefinitions"][0]["secrets"][0]["valueFrom"], param_arn);
    assert!(rendered.get("revision").is_none());
}

#[tokio::test]
async fn plan_shows_pending_changes_and_detailed_exitcode_says_so() {
    let moto = Moto::start();
    moto.bootstrap();
    let repo = example_repo();
    let plan = moto.secretwire(&["plan", "-m", &path_arg(&repo), "--detailed-exitcode"], &demo_env());
    plan.assert_code(2);
    assert!(plan.stdout.contains("  + ssm parameter /web/database-password"), "{}", plan.stdout);
    assert!(plan.stdout.contains("  ~ ecs service prod/web: web:1 -> the new revision"), "{}", plan.stdout);
    let json = moto.secretwire(&["plan", "-m", &path_arg(&repo), "--output", "json"], &demo_env());
    json.assert_code(0);
    let j = json.json();
    assert_eq!(j["changesPending"], true);
    assert_eq!(j["summary"]["create"], 7);
    // Planning writes nothing.
    let sdk = moto.sdk().await;
    let ssm = aws_sdk_ssm::Client::new(&sdk);
    assert!(ssm.describe_parameters().send().await.unwrap().parameters().is_empty());
}

#[tokio::test]
async fn an_existing_value_is_never_overwritten() {
    let moto = Moto::start();
    moto.bootstrap();
    let sdk = moto.sdk().await;
    let ssm = aws_sdk_ssm::Client::new(&sdk);
    let sm = aws_sdk_secretsmanager::Client::new(&sdk);
    // Owned already (an earlier apply, then a rotation changed the value).
    let owned = |src: &str| {
        vec![
            aws_sdk_secretsmanager::types::Tag::builder().key("secretwire.dev/managed-by").value("default").build(),
            aws_sdk_secretsmanager::types::Tag::builder().key("secretwire.dev/source").value(src).build(),
        ]
    };
    sm.create_secret()
        .name("web/api")
        .secret_string("rotated-value-1")
        .set_tags(Some(owned("Secret/web/api")))
        .send()
        .await
        .unwrap();
    // Unowned, but the manifest adopts it.
    ssm.put_parameter()
        .name("/web/database-password")
        .value("human-set-value-2")
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .key_id("alias/web")
        .send()
        .await
        .unwrap();
    let repo = example_repo();
    let values = std::fs::read_to_string(repo.path().join("values.yaml")).unwrap();
    std::fs::write(
        repo.path().join("values.yaml"),
        values.replace("  type: SecureString\n", "  type: SecureString\n  adopt: true\n"),
    )
    .unwrap();

    moto.secretwire(&["apply", "-m", &path_arg(&repo)], &demo_env()).assert_code(0);
    moto.secretwire(&["apply", "-m", &path_arg(&repo)], &demo_env()).assert_code(0);

    let v = sm.get_secret_value().secret_id("web/api").send().await.unwrap();
    assert_eq!(v.secret_string(), Some("rotated-value-1"));
    let p = ssm.get_parameter().name("/web/database-password").with_decryption(true).send().await.unwrap();
    assert_eq!(p.parameter().unwrap().value(), Some("human-set-value-2"));
    assert_eq!(p.parameter().unwrap().version(), 1, "never written again");
    assert_eq!(parameter_tags(&sdk, "/web/database-password").await["secretwire.dev/managed-by"], "default", "adopted");
}

#[tokio::test]
async fn an_unowned_role_is_reported_and_left_alone_until_adopted() {
    let moto = Moto::start();
    moto.bootstrap();
    let sdk = moto.sdk().await;
    let iam = aws_sdk_iam::Client::new(&sdk);
    let foreign_trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ecs-tasks.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
    iam.create_role().role_name("web-execution").assume_role_policy_document(foreign_trust).send().await.unwrap();
    let repo = example_repo();

    let run = moto.secretwire(&["apply", "-m", &path_arg(&repo)], &demo_env());
    run.assert_code(1);
    assert!(
        run.stdout.contains(
            "! iam role web-execution (execution role) conflict: exists without the tag secretwire.dev/managed-by"
        ),
        "{}",
        run.stdout
    );
    // Untouched: no tags, no inline policy, foreign trust.
    let role = iam.get_role().role_name("web-execution").send().await.unwrap().role.unwrap();
    assert!(role.tags().is_empty());
    assert!(iam.get_role_policy().role_name("web-execution").policy_name("secretwire").send().await.is_err());
    assert!(trust(&iam, "web-execution").await["Statement"][0].get("Condition").is_none());
    assert_eq!(service_task_definition(&sdk, "web").await, "web:1", "the conflicted service is not deployed");
    // Everything else is still applied.
    assert_eq!(service_task_definition(&sdk, "worker").await, "worker:2");

    let web = std::fs::read_to_string(repo.path().join("services/web.yaml")).unwrap();
    std::fs::write(
        repo.path().join("services/web.yaml"),
        web.replace("    roleName: web-execution\n", "    roleName: web-execution\n    adopt: true\n"),
    )
    .unwrap();
    moto.secretwire(&["apply", "-m", &path_arg(&repo)], &demo_env()).assert_code(0);
    let role = iam.get_role().role_name("web-execution").send().await.unwrap().role.unwrap();
    assert!(role.tags().iter().any(|t| t.key() == "secretwire.dev/managed-by" && t.value() == "default"));
    assert_eq!(
        trust(&iam, "web-execution").await["Statement"][0]["Condition"]["StringEquals"]["aws:SourceAccount"],
        ACCOUNT
    );
    assert_eq!(service_task_definition(&sdk, "web").await, "web:2");
}

#[tokio::test]
async fn a_missing_service_is_reported_and_the_others_still_apply() {
    let moto = Moto::start();
    moto.bootstrap();
    let repo = example_repo();
    std::fs::write(
        repo.path().join("services/ghost.yaml"),
        "apiVersion: secretwire.dev/v1alpha1\nkind: Service\nmetadata:\n  name: ghost\nspec:\n  cluster: prod\n  containers:\n    - name: app\n",
    )
    .unwrap();
    let run = moto.secretwire(&["apply", "-m", &path_arg(&repo)], &demo_env());
    run.assert_code(1);
    assert!(run.stdout.contains("! ecs service prod/ghost error: not found"), "{}", run.stdout);
    let sdk = moto.sdk().await;
    assert_eq!(service_task_definition(&sdk, "web").await, "web:2");
    let iam = aws_sdk_iam::Client::new(&sdk);
    assert!(iam.get_role().role_name("ghost-execution").send().await.is_err(), "nothing made for a missing service");
}

#[tokio::test]
async fn an_invalid_directory_applies_nothing() {
    let moto = Moto::start();
    moto.bootstrap();
    let repo = example_repo();
    std::fs::write(
        repo.path().join("broken.yaml"),
        "apiVersion: secretwire.dev/v1alpha1\nkind: Secret\nmetadata:\n  name: ok\nspec:\n  descripton: typo\n",
    )
    .unwrap();
    let run = moto.secretwire(&["apply", "-m", &path_arg(&repo)], &demo_env());
    run.assert_code(1);
    let want = format!("{}:6:3: error: unknown field `descripton`", repo.path().join("broken.yaml").display());
    assert!(run.stderr.contains(&want), "{}", run.stderr);
    let sdk = moto.sdk().await;
    let sm = aws_sdk_secretsmanager::Client::new(&sdk);
    assert!(sm.list_secrets().send().await.unwrap().secret_list().is_empty(), "nothing applied");
    assert_eq!(service_task_definition(&sdk, "web").await, "web:1");
    let v = moto.secretwire(&["validate", "-m", &path_arg(&repo)], &[]);
    v.assert_code(1);
    assert!(v.stderr.contains(&want));
}

#[tokio::test]
async fn no_value_appears_in_any_output_at_any_log_level() {
    let moto = Moto::start();
    moto.bootstrap();
    let repo = example_repo();
    let dir = path_arg(&repo);
    let mut outputs = Vec::new();
    // Most verbose: our debug logs and the AWS SDK's own trace logs.
    let trace = [("SECRETWIRE_LOG", "trace"), ("REGISTRY_CREDENTIALS", REGISTRY_CREDENTIALS)];
    for args in [
        vec!["plan", "-m", &dir, "-vvv"],
        vec!["apply", "-m", &dir, "-vvv"],
        vec!["apply", "-m", &dir, "-vvv", "--log-format", "json", "--output", "json"],
        vec!["plan", "-m", &dir, "--output", "json", "-vvv"],
        vec!["render", "-m", &dir, "web", "-vvv"],
    ] {
        let run = moto.secretwire(&args, &trace);
        assert!(run.code == 0, "{args:?}: {}", run.stderr);
        outputs.push(run.stdout);
        outputs.push(run.stderr);
    }
    let all = outputs.join("\n");
    assert!(all.contains("transmitting") || all.contains("TRACE"), "the SDK's trace logs were on");

    let values = generated_values(&moto.sdk().await).await;
    for v in &values {
        assert!(v.len() >= 12, "test values must be long enough to be unambiguous");
        assert!(!all.contains(v.as_str()), "a value leaked into the output");
    }
}

#[tokio::test]
async fn a_closed_stdout_ends_the_command_quietly() {
    // `secretwire render web | head -1` used to panic on the broken pipe.
    let moto = Moto::start();
    moto.bootstrap();
    let repo = example_repo();
    let mut child = moto
        .command()
        .args(["plan", "-m", &path_arg(&repo)])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader goes away before anything is written
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}

#[tokio::test]
async fn the_client_side_rate_limiter_spaces_calls_of_one_api() {
    let moto = Moto::start();
    moto.bootstrap();
    let repo = example_repo();
    let dir = path_arg(&repo);
    // Apply reads parameters twice (owned, then by name) and again after creating them.
    let limited = moto.secretwire(
        &["apply", "-m", &dir, "--output", "json", "--rate-limit", "SSM:DescribeParameters=2/1"],
        &demo_env(),
    );
    limited.assert_code(0);
    let waited = limited.json()["rateLimitWaitSeconds"].as_f64().unwrap();
    assert!(waited >= 0.4, "calls beyond the burst waited for tokens: {waited}");
    let off = moto.secretwire(
        &["apply", "-m", &dir, "--output", "json", "--rate-limit", "SSM:DescribeParameters=2/1", "--no-rate-limit"],
        &demo_env(),
    );
    off.assert_code(0);
    assert_eq!(off.json()["rateLimitWaitSeconds"], 0.0);
    let bad = moto.secretwire(&["plan", "-m", &dir, "--rate-limit", "DescribeParameters=fast"], &demo_env());
    bad.assert_code(1);
    assert!(bad.stderr.contains("Service:Operation=RATE"), "{}", bad.stderr);
}

/// Runs `secretwire validate` unable to bypass file permissions: as root
/// (CI), without CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH.
fn validate_without_root_privileges(dir: &str) -> Run {
    let root = String::from_utf8(std::process::Command::new("id").arg("-u").output().unwrap().stdout).unwrap();
    let mut cmd = if root.trim() == "0" {
        let mut c = std::process::Command::new("setpriv");
        c.args(["--bounding-set=-dac_override,-dac_read_search", "--", env!("CARGO_BIN_EXE_secretwire")]);
        c
    } else {
        std::process::Command::new(env!("CARGO_BIN_EXE_secretwire"))
    };
    let mut child = cmd
        .args(["validate", "-m", dir])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run secretwire validate");
    // A loader that blocks (on a FIFO, say) fails here instead of hanging the suite.
    let end = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > end {
            child.kill().unwrap();
            panic!("validate did not finish within 30 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Run::from(child.wait_with_output().unwrap())
}

#[test]
fn unreadable_files_directories_and_fifos_are_clear_errors_not_hangs() {
    use std::os::unix::fs::PermissionsExt;
    let repo = example_repo();
    let worker = repo.path().join("services/worker.yaml");
    std::fs::set_permissions(&worker, std::fs::Permissions::from_mode(0o000)).unwrap();
    let locked = repo.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    std::fs::write(locked.join("more.yaml"), "kind: Secret\n").unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    let fifo = repo.path().join("pipe.yaml");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());

    let run = validate_without_root_privileges(&path_arg(&repo));
    // Let the temporary directory be removed.
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
    run.assert_code(1);
    for (path, why) in [
        (worker.display().to_string(), "cannot read file: Permission denied"),
        (locked.display().to_string(), "cannot read directory: Permission denied"),
        (fifo.display().to_string(), "cannot read file: not a regular file"),
    ] {
        assert!(run.stderr.lines().any(|l| l.starts_with(&path) && l.contains(why)), "{path}: {why}\n{}", run.stderr);
    }
}

/// A revision built on the one the service runs keeps that revision's own
/// tags (DescribeTaskDefinition asked for TAGS), and `render` shows the tags
/// that would be registered.
#[tokio::test]
async fn a_revision_built_on_the_running_one_keeps_its_tags_and_render_shows_them() {
    let moto = Moto::start();
    moto.bootstrap();
    let sdk = moto.sdk().await;
    let ecs = aws_sdk_ecs::Client::new(&sdk);
    let running = ecs.describe_task_definition().task_definition("worker:1").send().await.unwrap();
    let arn = running.task_definition().unwrap().task_definition_arn().unwrap().to_string();
    let tag = aws_sdk_ecs::types::Tag::builder().key("team").value("payments").build();
    ecs.tag_resource().resource_arn(&arn).tags(tag).send().await.unwrap();
    let repo = example_repo();
    let render = moto.secretwire(&["render", "-m", &path_arg(&repo), "worker"], &demo_env());
    render.assert_code(0);
    let shown: Value = serde_json::from_str(&render.stdout).unwrap();
    let shown_tags: BTreeMap<String, String> = shown["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["key"].as_str().unwrap().to_string(), t["value"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(shown_tags.get("team").map(String::as_str), Some("payments"), "{shown_tags:?}");
    assert_eq!(shown_tags.get("secretwire.dev/source").map(String::as_str), Some("Service/worker"));

    moto.secretwire(&["apply", "-m", &path_arg(&repo)], &demo_env()).assert_code(0);
    let new = ecs
        .describe_task_definition()
        .task_definition(service_task_definition(&sdk, "worker").await)
        .include(aws_sdk_ecs::types::TaskDefinitionField::Tags)
        .send()
        .await
        .unwrap();
    let tags: BTreeMap<String, String> =
        new.tags().iter().map(|t| (t.key().unwrap().to_string(), t.value().unwrap().to_string())).collect();
    assert_eq!(tags.get("team").map(String::as_str), Some("payments"), "{tags:?}");
    assert_eq!(tags.get("secretwire.dev/managed-by").map(String::as_str), Some("default"));
}
