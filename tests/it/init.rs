//! `secretwire init` against a fleet wired by hand: the manifests it writes
//! are valid, `plan` on them changes no task definition and no service,
//! `apply` registers nothing, and no value is ever read.

use std::collections::BTreeSet;

use crate::faultproxy::{FaultProxy, Faults};
use crate::harness::*;

/// A fleet as people wire it by hand (the shapes of AWS's "Pass sensitive
/// data to a container" pages): full ARNs, a parameter by name, a JSON key,
/// log secrets, repository credentials by ARN and by name, shared values,
/// managed and inline policies; and a service on the EXTERNAL controller.
const FLEET: &str = r#"
import json, sys, boto3
kw = dict(endpoint_url=sys.argv[1], region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
ecs, iam, ssm, sm, kms = (boto3.client(s, **kw) for s in ["ecs", "iam", "ssm", "secretsmanager", "kms"])
key = kms.create_key(Description="shop")["KeyMetadata"]["KeyId"]
kms.create_alias(AliasName="alias/shop", TargetKeyId=key)
ssm.put_parameter(Name="/shop/db", Type="SecureString", KeyId="alias/shop", Value="hunter2-db", Description="shop database")
ssm.put_parameter(Name="shop-flags", Type="String", Value="hunter2-flags")
arn = {}
for name, kw2 in [("shop/api", {"KmsKeyId": "alias/shop", "Description": "upstream API"}), ("shop/splunk", {}), ("registry/creds", {})]:
    arn[name] = sm.create_secret(Name=name, SecretString=json.dumps({"username": "u", "password": "hunter2-" + name}), **kw2)["ARN"]
trust = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
for role in ["shop-exec", "shop-app", "worker-exec"]:
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=trust)
iam.attach_role_policy(RoleName="shop-exec", PolicyArn="arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy")
iam.put_role_policy(RoleName="shop-exec", PolicyName="read-secrets", PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": ["secretsmanager:GetSecretValue", "ssm:GetParameters"], "Resource": "*"}]}))
iam.put_role_policy(RoleName="shop-app", PolicyName="assets", PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
    {"Sid": "Assets", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::shop-assets/*",
     "Condition": {"Bool": {"aws:SecureTransport": "true"}}}]}))
ecs.create_cluster(clusterName="prod")
role = lambda n: f"arn:aws:iam::123456789012:role/{n}"
ecs.register_task_definition(
    family="shop", executionRoleArn=role("shop-exec"), taskRoleArn=role("shop-app"), networkMode="awsvpc",
    requiresCompatibilities=["FARGATE"], cpu="256", memory="512",
    containerDefinitions=[
        {"name": "web", "image": "public.ecr.aws/docker/library/httpd:2.4", "essential": True,
         "secrets": [
            {"name": "DB_PASSWORD", "valueFrom": "arn:aws:ssm:us-east-1:123456789012:parameter/shop/db"},
            {"name": "FLAGS", "valueFrom": "shop-flags"},
            {"name": "API_USER", "valueFrom": arn["shop/api"] + ":username::"},
            {"name": "API_PASSWORD", "valueFrom": arn["shop/api"] + ":password:AWSCURRENT:"}],
         "logConfiguration": {"logDriver": "splunk", "options": {"splunk-url": "https://splunk.example.com:8088"},
            "secretOptions": [{"name": "splunk-token", "valueFrom": arn["shop/splunk"]}]}},
        {"name": "envoy", "image": "public.ecr.aws/appmesh/aws-appmesh-envoy:v1.27.0.0-prod", "essential": True},
        {"name": "private", "image": "registry.example.com/shop/tool:1", "essential": False,
         "repositoryCredentials": {"credentialsParameter": arn["registry/creds"]}}])
ecs.register_task_definition(
    family="worker", executionRoleArn=role("worker-exec"),
    containerDefinitions=[{"name": "worker", "image": "registry.example.com/shop/worker:2", "memory": 256,
        "secrets": [{"name": "DB_PASSWORD", "valueFrom": "/shop/db"}],
        "repositoryCredentials": {"credentialsParameter": "registry/creds"}}])
ecs.create_service(cluster="prod", serviceName="shop", taskDefinition="shop:1", desiredCount=0)
ecs.create_service(cluster="prod", serviceName="worker", taskDefinition="worker:1", desiredCount=0)
ecs.create_service(cluster="prod", serviceName="legacy", taskDefinition="worker:1", desiredCount=0,
                   deploymentController={"type": "EXTERNAL"})
"#;

fn wire_by_hand(moto: &Moto) {
    let out = std::process::Command::new(repo_root().join(".venv/bin/python"))
        .args(["-c", FLEET, &moto.url])
        .output()
        .unwrap();
    assert!(out.status.success(), "fleet: {}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test]
async fn init_writes_manifests_whose_plan_changes_no_task_definition_or_service_and_reads_no_value() {
    let moto = Moto::start();
    wire_by_hand(&moto);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("repo");
    let proxy = FaultProxy::start(moto.endpoint(), Faults::default(), 1);
    let mut cmd = moto.command();
    cmd.env("AWS_ENDPOINT_URL", &proxy.url).args(["init", "--cluster", "prod", "-o"]).arg(&out);
    let run = Run::from(cmd.output().unwrap());
    run.assert_code(0);
    let sent = sent_actions(&proxy);
    for never in ["ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath", "secretsmanager:GetSecretValue"] {
        assert!(!sent.contains(never), "init read a value ({never}): {sent:?}");
    }
    let mut files = BTreeSet::new();
    let mut all = String::new();
    for p in ["values.yaml", "services/shop.yaml", "services/worker.yaml", "services/legacy.yaml"] {
        let text = std::fs::read_to_string(out.join(p)).unwrap_or_else(|e| panic!("{p}: {e}\n{}", run.stderr));
        files.insert(p);
        all.push_str(&text);
    }
    assert!(!all.contains("hunter2"), "a value in the manifests:\n{all}");
    let shop = std::fs::read_to_string(out.join("services/shop.yaml")).unwrap();
    for want in [
        "parameter: /shop/db",
        "parameter: shop-flags",
        "secret: shop/api",
        "jsonKey: password",
        "versionStage: AWSCURRENT",
        "secret: shop/splunk",
        "roleName: shop-exec",
        "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy",
        "s3:GetObject",
    ] {
        assert!(shop.contains(want), "{want} missing:\n{shop}");
    }
    assert!(!shop.contains("envoy"), "a container that reads nothing is not declared:\n{shop}");
    let legacy = std::fs::read_to_string(out.join("services/legacy.yaml")).unwrap();
    assert!(legacy.lines().all(|l| l.starts_with('#')) && legacy.contains("EXTERNAL"), "{legacy}");

    let out_s = out.to_str().unwrap();
    moto.secretwire(&["validate", "-m", out_s], &[]).assert_code(0);
    let plan = moto.secretwire(&["plan", "-m", out_s, "--output", "json"], &[]);
    plan.assert_code(0);
    let plan = plan.json();
    let objects = plan["objects"].as_array().unwrap();
    assert_eq!(objects.iter().filter(|o| o["kind"] == "Service").count(), 2, "{plan:#}");
    for o in objects {
        assert!(
            o["problems"].as_array().unwrap().iter().all(|p| p["kind"] != "error" && p["kind"] != "conflict"),
            "{o:#}"
        );
        for c in o["changes"].as_array().unwrap() {
            let r = c["resource"].as_str().unwrap();
            if r.starts_with("task definition") || r.starts_with("ecs service") {
                assert_eq!(c["action"], "unchanged", "init then plan changes {r}: {c:#}");
            }
            if r.starts_with("ssm parameter") || r.starts_with("secret ") {
                assert_eq!(c["detail"], "adopt: add ownership tags", "{c:#}");
            }
        }
    }
    let apply = moto.secretwire(&["apply", "-m", out_s, "--output", "json"], &[]);
    apply.assert_code(0);
    let apply = apply.json();
    assert!(apply["awsCalls"]["ECS:RegisterTaskDefinition"].is_null(), "apply registered: {:#}", apply["awsCalls"]);
    assert!(apply["awsCalls"]["ECS:UpdateService"].is_null(), "apply updated a service: {:#}", apply["awsCalls"]);
    // And the adopted fleet is now secretwire's: a second apply writes nothing.
    let again = moto.secretwire(&["apply", "-m", out_s, "--output", "json"], &[]);
    assert_eq!(again.assert_code(0).json()["awsWriteCount"], 0, "{}", again.stdout);

    // init never writes over a file.
    let twice = moto.secretwire(&["init", "--cluster", "prod", "-o", out_s], &[]);
    twice.assert_code(1);
    assert!(twice.stderr.contains("would overwrite"), "{}", twice.stderr);
    // Without -o: one YAML stream on stdout, of the named service only.
    let one = moto.secretwire(&["init", "--cluster", "prod", "--service", "worker"], &[]);
    one.assert_code(0);
    assert!(one.stdout.contains("name: worker") && !one.stdout.contains("name: shop\n"), "{}", one.stdout);
    assert!(
        one.stdout.contains("secret: registry/creds"),
        "a name in repositoryCredentials is the secret's: {}",
        one.stdout
    );
}
