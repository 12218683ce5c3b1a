//! Guardrails: what the platform imposes on every object, whatever the
//! manifests say: the permissions boundary, the role path, and the tenant
//! rules (`--tenants`), each read back from IAM.

use crate::harness::*;

async fn boundary_of(sdk: &aws_config::SdkConfig, role: &str) -> Option<String> {
    let r = aws_sdk_iam::Client::new(sdk).get_role().role_name(role).send().await.unwrap();
    r.role()?.permissions_boundary()?.permissions_boundary_arn().map(str::to_string)
}

#[tokio::test]
async fn every_role_gets_the_permissions_boundary_and_a_removed_one_is_put_back() {
    let moto = Moto::start();
    moto.bootstrap();
    let sdk = moto.sdk().await;
    let iam = aws_sdk_iam::Client::new(&sdk);
    let doc = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["ssm:GetParameters","secretsmanager:GetSecretValue","kms:Decrypt","s3:GetObject","ecr:*","logs:*"],"Resource":"*"}]}"#;
    let boundary = iam.create_policy().policy_name("secretwire-boundary").policy_document(doc).send().await.unwrap();
    let boundary = boundary.policy().unwrap().arn().unwrap().to_string();
    let repo = example_repo();
    let dir = repo.path().display().to_string();
    let flag = ["--permissions-boundary", boundary.as_str()];
    moto.secretwire(&[&["apply", "-m", &dir][..], &flag].concat(), &demo_env()).assert_code(0);
    for role in ["web-execution", "web-task", "worker-execution"] {
        assert_eq!(boundary_of(&sdk, role).await.as_deref(), Some(boundary.as_str()), "{role}");
    }
    let again = moto.secretwire(&[&["apply", "-m", &dir, "--output", "json"][..], &flag].concat(), &demo_env());
    assert_eq!(again.json()["awsWriteCount"], 0, "{}", again.stdout);

    iam.delete_role_permissions_boundary().role_name("web-task").send().await.unwrap();
    let plan = moto.secretwire(&[&["plan", "-m", &dir][..], &flag].concat(), &demo_env());
    assert!(
        plan.stdout.contains(&format!("~ iam role web-task (task role): permissions boundary {boundary}")),
        "{}",
        plan.stdout
    );
    moto.secretwire(&[&["apply", "-m", &dir][..], &flag].concat(), &demo_env()).assert_code(0);
    assert_eq!(boundary_of(&sdk, "web-task").await.as_deref(), Some(boundary.as_str()), "put back like any drift");

    // The printed policy lets role writes happen only with it, and never removes it.
    let policy = moto.secretwire(&[&["policy", "-m", &dir][..], &flag].concat(), &[]);
    policy.assert_code(0);
    let text = policy.stdout.clone();
    let doc = policy.json();
    assert!(!text.contains("DeleteRolePermissionsBoundary"));
    for action in ["iam:CreateRole", "iam:PutRolePolicy", "iam:AttachRolePolicy", "iam:PutRolePermissionsBoundary"] {
        let st: Vec<&serde_json::Value> = doc["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["Action"] == action || s["Action"].as_array().is_some_and(|a| a.iter().any(|x| x == action)))
            .collect();
        assert!(!st.is_empty(), "{action} allowed");
        for s in st {
            assert_eq!(s["Condition"]["ArnEquals"]["iam:PermissionsBoundary"], boundary.as_str(), "{action}: {s}");
        }
    }
    // Without the flag, a boundary is left as it is.
    let plain = moto.secretwire(&["apply", "-m", &dir, "--output", "json"], &demo_env());
    assert_eq!(plain.json()["awsWriteCount"], 0, "{}", plain.stdout);
    assert!(boundary_of(&sdk, "web-task").await.is_some());
}

/// `(attached managed policy ARNs, inline policy document)` of a role, read back from IAM.
async fn role_grants(sdk: &aws_config::SdkConfig, role: &str) -> (Vec<String>, Option<serde_json::Value>) {
    let iam = aws_sdk_iam::Client::new(sdk);
    let attached = iam.list_attached_role_policies().role_name(role).send().await.unwrap();
    let arns = attached.attached_policies().iter().filter_map(|p| p.policy_arn().map(str::to_string)).collect();
    let inline = iam.get_role_policy().role_name(role).policy_name("secretwire").send().await.ok().map(|p| {
        let doc = percent_encoding::percent_decode_str(p.policy_document()).decode_utf8_lossy().into_owned();
        serde_json::from_str(&doc).unwrap()
    });
    (arns, inline)
}

async fn role_exists(sdk: &aws_config::SdkConfig, role: &str) -> bool {
    aws_sdk_iam::Client::new(sdk).get_role().role_name(role).send().await.is_ok()
}

async fn secret_tags(sdk: &aws_config::SdkConfig, name: &str) -> std::collections::BTreeMap<String, String> {
    let d = aws_sdk_secretsmanager::Client::new(sdk).describe_secret().secret_id(name).send().await.unwrap();
    d.tags()
        .iter()
        .map(|t| (t.key().unwrap_or_default().to_string(), t.value().unwrap_or_default().to_string()))
        .collect()
}

const TENANTS: &str = include_str!("../fixtures/tenants/tenants.yaml");
/// The issue's manifest: AdministratorAccess, `iam:*` on `*`, another team's database password.
const GREEDY: &str = include_str!("../fixtures/tenants/greedy.yaml");
const PAYMENTS_DB: &str = include_str!("../fixtures/tenants/payments-db.yaml");

/// The example repo as two teams: web's manifests under teams/web, the
/// registry credentials (and payments' database) owned by the platform team.
fn two_team_repo() -> (tempfile::TempDir, tempfile::TempDir) {
    let repo = tempfile::tempdir().unwrap();
    let web = repo.path().join("teams/web");
    let example = example_repo();
    std::fs::create_dir_all(repo.path().join("teams")).unwrap();
    std::fs::rename(example.path(), &web).unwrap();
    let values = std::fs::read_to_string(web.join("values.yaml")).unwrap();
    let (own, registry) = values
        .split_once("---\napiVersion: secretwire.dev/v1alpha1\nkind: Secret\nmetadata:\n  name: registry/dockerhub")
        .unwrap();
    std::fs::write(web.join("values.yaml"), own).unwrap();
    std::fs::create_dir_all(repo.path().join("platform")).unwrap();
    let registry =
        format!("apiVersion: secretwire.dev/v1alpha1\nkind: Secret\nmetadata:\n  name: registry/dockerhub{registry}");
    std::fs::write(repo.path().join("platform/registry.yaml"), registry).unwrap();
    std::fs::write(repo.path().join("platform/payments.yaml"), PAYMENTS_DB).unwrap();
    std::fs::write(web.join("greedy.yaml"), GREEDY).unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("tenants.yaml"), TENANTS).unwrap();
    (repo, outside)
}

#[tokio::test]
async fn a_tenant_gets_no_more_than_the_tenant_file_allows_and_a_refused_object_leaves_aws_untouched() {
    let moto = Moto::start();
    moto.bootstrap();
    let sdk = moto.sdk().await;
    let ecs = aws_sdk_ecs::Client::new(&sdk);
    let def = aws_sdk_ecs::types::ContainerDefinition::builder().name("app").image("busybox").memory(128).build();
    ecs.register_task_definition().family("web-greedy").container_definitions(def).send().await.unwrap();
    ecs.create_service().cluster("prod").service_name("web-greedy").task_definition("web-greedy").send().await.unwrap();
    let (repo, outside) = two_team_repo();
    let dir = repo.path().display().to_string();
    let tenants_file = outside.path().join("tenants.yaml");
    let tenants = tenants_file.display().to_string();
    let with = |cmd: &str| vec![cmd.to_string(), "-m".into(), dir.clone(), "--tenants".into(), tenants.clone()];
    let run = |args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        moto.secretwire(&args, &demo_env())
    };

    // validate names every breach, located, with its tenant and rule.
    let v = run(with("validate"));
    v.assert_code(1);
    for want in [
        "teams/web/greedy.yaml:8:25: error: tenant `web`: rule `managedPolicyArns`",
        "teams/web/greedy.yaml:12:36: error: tenant `web`: rule `statements`: `iam:*`",
        "teams/web/greedy.yaml:16:35: error: tenant `web`: rule `values`: Service/web-greedy reads secret `payments/prod-db`",
        "teams/web/services/worker.yaml:7:9: error: tenant `web`: rule `rolePrefix`: Service/worker names role `worker-execution`",
        "teams/web/services/worker.yaml:13:17: error: tenant `web`: rule `values`: Service/worker reads secret `registry/dockerhub`",
    ] {
        assert!(v.stderr.contains(want), "missing {want}\n{}", v.stderr);
    }
    let without = moto.secretwire(&["validate", "-m", &dir], &[]);
    assert!(without.stderr.contains("treated as one tenant"), "{}", without.stderr);

    // apply: the refused objects fail, everything else is applied.
    let applied = run(with("apply"));
    applied.assert_code(1);
    assert!(applied.stderr.contains("2 object(s) refused"), "{}", applied.stderr);
    assert!(!role_exists(&sdk, "web-greedy-execution").await && !role_exists(&sdk, "web-greedy-task").await);
    assert!(!role_exists(&sdk, "worker-execution").await, "the refused worker made no role");
    let greedy = ecs.describe_services().cluster("prod").services("web-greedy").send().await.unwrap();
    assert!(greedy.services()[0].task_definition().unwrap().ends_with("web-greedy:1"), "its service untouched");
    let (web_attached, web_inline) = role_grants(&sdk, "web-execution").await;
    assert_eq!(web_attached, ["arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"]);
    assert!(!web_inline.unwrap().to_string().contains("payments"), "web reads none of payments' values");
    // Audit: what it made carries the tenant.
    assert_eq!(secret_tags(&sdk, "web/api").await.get("secretwire.dev/tenant").map(String::as_str), Some("web"));
    assert_eq!(
        secret_tags(&sdk, "registry/dockerhub").await.get("secretwire.dev/tenant").map(String::as_str),
        Some("platform")
    );
    let role = aws_sdk_iam::Client::new(&sdk).get_role().role_name("web-task").send().await.unwrap();
    let tags: Vec<(String, String)> =
        role.role().unwrap().tags().iter().map(|t| (t.key().to_string(), t.value().to_string())).collect();
    assert!(tags.contains(&("secretwire.dev/tenant".into(), "web".into())), "{tags:?}");
    let audited = |what: &str, file: &str, tenant: &str| {
        applied
            .stderr
            .lines()
            .any(|l| l.contains(what) && l.contains(&format!("{file}:")) && l.contains(&format!("tenant={tenant}")))
    };
    assert!(
        audited("Created secret", "teams/web/values.yaml", "web")
            && audited("Created secret", "platform/registry.yaml", "platform")
            && audited("Created role", "teams/web/services/web.yaml", "web"),
        "every write is logged with its manifest file and tenant\n{}",
        applied.stderr
    );

    // Lifted by the tenant file and by sharing: now the same manifests apply.
    let shared = std::fs::read_to_string(repo.path().join("platform/registry.yaml")).unwrap();
    std::fs::write(repo.path().join("platform/registry.yaml"), format!("{}\n  sharedWith: [web]\n", shared.trim_end()))
        .unwrap();
    std::fs::write(repo.path().join("platform/payments.yaml"), format!("{PAYMENTS_DB}  sharedWith: [web]\n")).unwrap();
    let worker = repo.path().join("teams/web/services/worker.yaml");
    let text = std::fs::read_to_string(&worker).unwrap();
    std::fs::write(
        &worker,
        text.replace("  cluster: prod\n", "  cluster: prod\n  executionRole:\n    roleName: web-worker-execution\n"),
    )
    .unwrap();
    let widened = TENANTS.replace(
        "  rolePrefix: web-\n",
        "  rolePrefix: web-
  managedPolicyArns:
    - arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy
    - arn:aws:iam::aws:policy/AdministratorAccess
  allowStatements:
    - { actions: [\"iam:*\", \"sts:AssumeRole\", \"secretsmanager:*\"], resources: [\"*\"] }
",
    );
    std::fs::write(&tenants_file, widened).unwrap();
    run(with("apply")).assert_code(0);
    let (attached, _) = role_grants(&sdk, "web-greedy-execution").await;
    assert_eq!(attached, ["arn:aws:iam::aws:policy/AdministratorAccess"], "the platform listed it");
    let (_, inline) = role_grants(&sdk, "web-greedy-execution").await;
    assert!(inline.unwrap().to_string().contains("payments/prod-db"), "shared with web");
    let (_, task) = role_grants(&sdk, "web-greedy-task").await;
    assert!(task.unwrap().to_string().contains("iam:*"), "opened by allowStatements");
    let (_, worker_inline) = role_grants(&sdk, "web-worker-execution").await;
    assert!(worker_inline.unwrap().to_string().contains("registry/dockerhub"));
}

#[tokio::test]
async fn roles_live_under_the_role_path_and_a_role_outside_it_is_not_adopted() {
    let moto = Moto::start();
    moto.bootstrap();
    let sdk = moto.sdk().await;
    let iam = aws_sdk_iam::Client::new(&sdk);
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ecs-tasks.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
    iam.create_role().role_name("legacy-task").assume_role_policy_document(trust).send().await.unwrap();
    let repo = example_repo();
    let dir = repo.path().display().to_string();
    let flag = ["--role-path", "/secretwire/"];
    moto.secretwire(&[&["apply", "-m", &dir][..], &flag].concat(), &demo_env()).assert_code(0);
    for role in ["web-execution", "web-task", "worker-execution"] {
        let r = iam.get_role().role_name(role).send().await.unwrap();
        assert_eq!(r.role().unwrap().path(), "/secretwire/", "{role}");
    }
    let ecs = aws_sdk_ecs::Client::new(&sdk);
    let svc = ecs.describe_services().cluster("prod").services("web").send().await.unwrap();
    let td = svc.services()[0].task_definition().unwrap().to_string();
    let td = ecs.describe_task_definition().task_definition(td).send().await.unwrap();
    let exec = td.task_definition().unwrap().execution_role_arn().unwrap().to_string();
    assert_eq!(
        exec, "arn:aws:iam::123456789012:role/secretwire/web-execution",
        "the task definition names the real ARN"
    );
    let again = moto.secretwire(&[&["apply", "-m", &dir, "--output", "json"][..], &flag].concat(), &demo_env());
    assert_eq!(again.json()["awsWriteCount"], 0, "{}", again.stdout);

    // The printed policy's IAM resources are under the path.
    let policy = moto.secretwire(&[&["policy", "-m", &dir, "--prune"][..], &flag].concat(), &[]);
    let doc = policy.json();
    for st in doc["Statement"].as_array().unwrap() {
        let resources: Vec<String> = match &st["Resource"] {
            serde_json::Value::String(s) => vec![s.clone()],
            serde_json::Value::Array(a) => a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
            _ => vec![],
        };
        for r in resources.iter().filter(|r| r.contains(":iam::") && r.contains(":role/")) {
            assert!(r.contains(":role/secretwire/"), "{r} in {st}");
        }
    }

    // Adopting a role at `/` is refused, located at its manifest.
    let web = repo.path().join("services/web.yaml");
    let text = std::fs::read_to_string(&web).unwrap();
    std::fs::write(&web, text.replace("    roleName: web-task\n", "    roleName: legacy-task\n    adopt: true\n"))
        .unwrap();
    let refused = moto.secretwire(&[&["apply", "-m", &dir][..], &flag].concat(), &demo_env());
    refused.assert_code(1);
    let out = format!("{}{}", refused.stdout, refused.stderr);
    assert!(out.contains("services/web.yaml:"), "{out}");
    assert!(out.contains("at path `/`, outside --role-path `/secretwire/`"), "{out}");
    let tags = iam.get_role().role_name("legacy-task").send().await.unwrap();
    assert!(tags.role().unwrap().tags().is_empty(), "not adopted");
}

#[tokio::test]
async fn run_holds_every_reload_to_the_tenant_rules_and_keeps_the_last_good_version_of_a_refused_edit() {
    let moto = Moto::start();
    moto.bootstrap();
    let sdk = moto.sdk().await;
    let (repo, outside) = two_team_repo();
    std::fs::remove_file(repo.path().join("teams/web/greedy.yaml")).unwrap();
    let tenants = outside.path().join("tenants.yaml").display().to_string();
    let mut cmd = moto.command();
    cmd.env("REGISTRY_CREDENTIALS", REGISTRY_CREDENTIALS);
    let run = start_run_with(cmd, repo.path(), &["--tenants", &tenants, "--no-events", "--resync-interval", "2s"]);
    let ready = |run: &Running, object: &str| run.status()["objects"][object]["conditions"][0].clone();
    eventually!("web applied", 60, run, ready(&run, "Service/web")["status"] == "True");
    let worker = ready(&run, "Service/worker");
    assert_eq!(worker["reason"], "InvalidManifest", "{worker}");
    assert_eq!(worker["message"], "refused by a tenant rule; not applied", "{worker}");
    assert!(!role_exists(&sdk, "worker-execution").await);

    // A widening edit is refused; the last good version stays applied.
    let web = repo.path().join("teams/web/services/web.yaml");
    let text = std::fs::read_to_string(&web).unwrap();
    std::fs::write(&web, text.replace("    roleName: web-execution\n", "    roleName: web-execution\n    adopt: true\n").replace(
        "      - arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy\n",
        "      - arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy\n      - arn:aws:iam::aws:policy/AdministratorAccess\n",
    ))
    .unwrap();
    eventually!("the refusal on /status", 30, run, {
        ready(&run, "Service/web")["message"] == "refused by a tenant rule; keeping the last good version"
    });
    assert!(run.status()["manifestErrors"][0].as_str().unwrap().contains("rule `managedPolicyArns`"));
    run.wait_passes(1);
    let (attached, _) = role_grants(&sdk, "web-execution").await;
    assert_eq!(attached, ["arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"]);
    assert_eq!(run.stop().0, 0);
}
