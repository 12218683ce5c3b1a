//! Every policy secretwire writes (execution and task roles: trust and
//! inline) or prints (`secretwire policy`, with and without `--apply-only`)
//! is checked against AWS's Service Authorization Reference, as the IAM
//! linter parliament carries it (`scripts/lint_policies.py`): each action's
//! resource types and condition keys, and no `Resource: "*"` where an action
//! can be scoped.

use serde_json::json;

use crate::harness::*;

#[tokio::test]
async fn every_policy_written_or_printed_passes_the_service_authorization_reference() {
    let moto = Moto::start();
    moto.bootstrap();
    let repo = example_repo();
    let dir = repo.path().display().to_string();
    moto.secretwire(&["apply", "-m", &dir], &demo_env()).assert_code(0);
    let out = tempfile::tempdir().unwrap();
    let mut n = 0;
    let mut write = |name: String, kind: &str, document: serde_json::Value| {
        n += 1;
        let entry = json!({"name": name, "kind": kind, "document": document});
        std::fs::write(out.path().join(format!("{n:03}.json")), entry.to_string()).unwrap();
    };
    let boundary = "--permissions-boundary=arn:aws:iam::123456789012:policy/secretwire-boundary";
    for args in [
        vec!["policy", "-m", &dir],
        vec!["policy", "-m", &dir, "--apply-only"],
        vec!["policy", "-m", &dir, "--prune"],
        vec!["policy", "-m", &dir, boundary],
        vec!["policy", "-m", &dir, "--prune", "--role-path", "/secretwire/"],
        vec!["policy", "-m", &dir, "--lease", "dynamodb:secretwire-lease"],
    ] {
        let run = moto.secretwire(&args, &[]);
        run.assert_code(0);
        write(args.join(" "), "identity", serde_json::from_str(&run.stdout).unwrap());
    }
    // With rotation declared (configured on one secret, cancelled on another).
    let rotating = example_repo();
    let values = rotating.path().join("values.yaml");
    let text = std::fs::read_to_string(&values).unwrap()
        .replace("  name: web/api\nspec:\n", "  name: web/api\nspec:\n  rotation: { lambdaArn: 'arn:aws:lambda:us-east-1:123456789012:function:rotate', schedule: 'rate(30 days)' }\n")
        .replace("  name: web/splunk-token\nspec:\n", "  name: web/splunk-token\nspec:\n  rotation: { enabled: false }\n");
    std::fs::write(&values, text).unwrap();
    let rotating_dir = rotating.path().display().to_string();
    let run = moto.secretwire(&["policy", "-m", &rotating_dir], &[]);
    run.assert_code(0);
    assert!(
        run.stdout.contains("secretsmanager:RotateSecret") && run.stdout.contains("secretsmanager:CancelRotateSecret")
    );
    write("policy with rotation".into(), "identity", serde_json::from_str(&run.stdout).unwrap());
    // With Targets: the controller's policy, each Target's role and trust
    // policy, and the forwarding role `run` makes in each Target's account.
    let fleet = crate::targets::repo();
    let fleet_dir = fleet.path().display().to_string();
    let run = moto.secretwire(&["policy", "-m", &fleet_dir, "--prune"], &[]);
    run.assert_code(0);
    assert!(run.stdout.contains("AssumeTargetRoles") && run.stdout.contains("LetTargetsPutEvents"), "{}", run.stdout);
    write("policy with targets".into(), "identity", serde_json::from_str(&run.stdout).unwrap());
    for target in ["shared", "apps-west"] {
        let run = moto.secretwire(&["policy", "-m", &fleet_dir, "--prune", "--target", target], &[]);
        run.assert_code(0);
        let doc = run.json();
        write(format!("{target} role policy"), "identity", doc["rolePolicy"].clone());
        write(format!("{target} trust policy"), "trust", doc["trustPolicy"].clone());
    }
    let home = secretwire::arn::Scope::new("us-east-1", "123456789012");
    let queue = "arn:aws:sqs:us-east-1:123456789012:secretwire-default-events";
    for to_queue in [true, false] {
        write(
            format!("forwarding {to_queue}"),
            "identity",
            secretwire::aws::forward::role_policy(&home, queue, to_queue),
        );
    }
    write("forwarding trust".into(), "trust", secretwire::aws::forward::role_trust("222222222222"));
    let sdk = moto.sdk().await;
    let iam = aws_sdk_iam::Client::new(&sdk);
    let roles = iam.list_roles().send().await.unwrap();
    let mut written = 0;
    for r in roles.roles() {
        let name = r.role_name();
        let trust = secretwire::policy::decode_document(r.assume_role_policy_document().unwrap()).unwrap();
        write(format!("{name} trust"), "trust", trust);
        for p in iam.list_role_policies().role_name(name).send().await.unwrap().policy_names() {
            let doc = iam.get_role_policy().role_name(name).policy_name(p).send().await.unwrap();
            write(
                format!("{name} {p}"),
                "identity",
                secretwire::policy::decode_document(doc.policy_document()).unwrap(),
            );
            written += 1;
        }
    }
    assert!(written >= 3, "the example's execution and task roles have inline policies");
    let lint = std::process::Command::new(repo_root().join(".venv/bin/python"))
        .arg(repo_root().join("scripts/lint_policies.py"))
        .arg(out.path())
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&lint.stdout);
    assert!(lint.status.success(), "{report}{}", String::from_utf8_lossy(&lint.stderr));
    assert!(report.contains(&format!("{} policies checked, 0 findings", n)), "{report}");
}
