//! Guardrails: what the platform imposes on every object, whatever the
//! manifests say. So far: the permissions boundary on every role.

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
