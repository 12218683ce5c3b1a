//! The fixture corpus of real shapes (`tests/fixtures/aws/`): task
//! definitions of the kinds people publish, each wired on both base kinds,
//! must apply once, apply again with zero writes, and render exactly what was
//! registered.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::harness::*;

fn corpus() -> Vec<(String, Value)> {
    let dir = repo_root().join("tests/fixtures/aws/taskdefs");
    let mut out: Vec<(String, Value)> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            (name, serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap())
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Registers `td` under each family and creates a service per family on it.
fn bootstrap(moto: &Moto, registrations: &[(String, Value)]) {
    let script = r#"
import json, sys, boto3
ecs = boto3.client("ecs", endpoint_url=sys.argv[1], region_name="us-east-1",
                   aws_access_key_id="test", aws_secret_access_key="test")
ecs.create_cluster(clusterName="prod")
for family, td in json.load(sys.stdin):
    td = dict(td, family=family)
    ecs.register_task_definition(**td)
    ecs.create_service(cluster="prod", serviceName=family, taskDefinition=f"{family}:1", desiredCount=0)
"#;
    let mut child = std::process::Command::new(repo_root().join(".venv/bin/python"))
        .args(["-c", script, &moto.url])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(serde_json::to_string(registrations).unwrap().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "corpus bootstrap: {}", String::from_utf8_lossy(&out.stderr));
}

/// The manifest of one service on `base` (a template path, or none: the running revision).
fn service(name: &str, td: &Value, template: Option<&Path>) -> String {
    let containers = td["containerDefinitions"].as_array().unwrap();
    let first = containers[0]["name"].as_str().unwrap();
    let logged = containers.iter().find(|c| c["logConfiguration"]["logDriver"].is_string());
    let mut wiring =
        format!("    - name: {first}\n      secrets:\n        - {{ name: DB_PASSWORD, parameter: /corpus/db }}\n");
    if let Some(c) = logged {
        let n = c["name"].as_str().unwrap();
        if n == first {
            wiring.push_str("      logSecrets:\n        - { name: token, secret: corpus/token }\n");
        } else {
            wiring.push_str(&format!(
                "    - name: {n}\n      logSecrets:\n        - {{ name: token, secret: corpus/token }}\n"
            ));
        }
    }
    let td_spec = template.map(|t| format!("  taskDefinition: {{ template: {} }}\n", t.display())).unwrap_or_default();
    format!(
        "apiVersion: secretwire.dev/v1alpha1\nkind: Service\nmetadata: {{ name: {name} }}\nspec:\n  cluster: prod\n{td_spec}  containers:\n{wiring}---\n"
    )
}

#[tokio::test]
async fn every_published_task_definition_applies_once_and_renders_what_was_registered_on_both_base_kinds() {
    let moto = Moto::start();
    let fixtures = corpus();
    assert!(fixtures.len() >= 15, "the corpus holds at least 15 task definitions");
    // `<name>-t` is built on its template, `<name>-r` on the revision it runs.
    let mut registrations = Vec::new();
    for (name, td) in &fixtures {
        registrations.push((format!("{name}-t"), td.clone()));
        registrations.push((format!("{name}-r"), td.clone()));
    }
    bootstrap(&moto, &registrations);
    let repo = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(repo.path().join("taskdefs")).unwrap();
    let mut manifests = String::from(
        "apiVersion: secretwire.dev/v1alpha1\nkind: Parameter\nmetadata: { name: /corpus/db }\nspec:\n  initialValue: { generate: { length: 24 } }\n---\n\
         apiVersion: secretwire.dev/v1alpha1\nkind: Secret\nmetadata: { name: corpus/token }\nspec:\n  initialValue: { generate: { length: 24 } }\n---\n",
    );
    for (name, td) in &fixtures {
        let mut template = td.clone();
        template["family"] = Value::String(format!("{name}-t"));
        let rel = PathBuf::from(format!("taskdefs/{name}.json"));
        std::fs::write(repo.path().join(&rel), serde_json::to_string_pretty(&template).unwrap()).unwrap();
        manifests.push_str(&service(&format!("{name}-t"), td, Some(&rel)));
        manifests.push_str(&service(&format!("{name}-r"), td, None));
    }
    std::fs::write(repo.path().join("corpus.yaml"), manifests).unwrap();
    let dir = repo.path().display().to_string();

    moto.secretwire(&["validate", "-m", &dir], &[]).assert_code(0);
    let first = moto.secretwire(&["apply", "-m", &dir, "--output", "json"], &[]);
    first.assert_code(0);
    // As after a secretwire upgrade, or a deployment by another tool: the
    // services' applied tag no longer vouches, so each running revision is read
    // and compared with what would be rendered, in the form ECS stores it.
    let sdk = moto.sdk().await;
    let ecs = aws_sdk_ecs::Client::new(&sdk);
    for (family, _) in &registrations {
        let svc = ecs.describe_services().cluster("prod").services(family).send().await.unwrap();
        let arn = svc.services()[0].service_arn().unwrap().to_string();
        ecs.untag_resource().resource_arn(arn).tag_keys("secretwire.dev/applied").send().await.unwrap();
    }
    let second = moto.secretwire(&["apply", "-m", &dir, "--output", "json"], &[]);
    second.assert_code(0);
    assert_eq!(second.json()["awsWriteCount"], 0, "a second apply writes nothing: {}", second.stdout);
    let reads = &second.json()["awsCalls"]["ECS:DescribeTaskDefinition"];
    assert!(reads.as_u64().unwrap_or(0) >= registrations.len() as u64, "every running revision compared: {reads}");
    let mut running = Vec::new();
    for (family, _) in &registrations {
        let svc = ecs.describe_services().cluster("prod").services(family).send().await.unwrap();
        let now = secretwire::arn::task_definition_short(svc.services()[0].task_definition().unwrap()).to_string();
        assert_eq!(now, format!("{family}:2"), "one new revision, deployed, in the family it had");
        running.push(now);
    }
    let registered = described(&moto, &running);
    let mut rendered_mismatches = BTreeMap::new();
    for ((family, _), registered) in registrations.iter().zip(registered) {
        let render = moto.secretwire(&["render", "-m", &dir, family], &[]);
        render.assert_code(0);
        let rendered: Value = serde_json::from_str(&render.stdout).unwrap();
        if secretwire::taskdef::differs(&rendered, &registered) {
            rendered_mismatches.insert(family.clone(), secretwire::taskdef::changed_fields(&rendered, &registered));
        }
    }
    assert!(rendered_mismatches.is_empty(), "render differs from what was registered: {rendered_mismatches:?}");
}

/// DescribeTaskDefinition of each id in its wire JSON, as moto holds it.
fn described(moto: &Moto, ids: &[String]) -> Vec<Value> {
    let script = r#"
import json, sys, boto3
ecs = boto3.client("ecs", endpoint_url=sys.argv[1], region_name="us-east-1",
                   aws_access_key_id="test", aws_secret_access_key="test")
print(json.dumps([ecs.describe_task_definition(taskDefinition=i)["taskDefinition"] for i in sys.argv[2:]], default=str))
"#;
    let out = std::process::Command::new(repo_root().join(".venv/bin/python"))
        .args(["-c", script, &moto.url])
        .args(ids)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}
