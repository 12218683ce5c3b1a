use serde_json::json;

use super::found::*;
use super::*;

const ACCOUNT: &str = "123456789012";

fn scope() -> Scope {
    Scope::new("eu-west-1", ACCOUNT)
}

/// The shape AWS documents for secrets in a container definition
/// (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/secrets-envvar-secrets-manager.html,
/// .../specifying-sensitive-data-parameters.html, .../private-auth.html), wired by hand.
fn hand_wired() -> Found {
    let sm = |n: &str| format!("arn:aws:secretsmanager:eu-west-1:{ACCOUNT}:secret:{n}");
    let td = json!({
        "family": "web-td", "taskDefinitionArn": format!("arn:aws:ecs:eu-west-1:{ACCOUNT}:task-definition/web-td:7"),
        "executionRoleArn": format!("arn:aws:iam::{ACCOUNT}:role/ecsTaskExecutionRole"),
        "taskRoleArn": format!("arn:aws:iam::{ACCOUNT}:role/app/web-app"),
        "containerDefinitions": [
            {"name": "web", "image": "httpd",
             "secrets": [
                {"name": "DB", "valueFrom": format!("arn:aws:ssm:eu-west-1:{ACCOUNT}:parameter/web/db")},
                {"name": "PLAIN", "valueFrom": "feature-flags"},
                {"name": "USER", "valueFrom": format!("{}:username::", sm("web/api-AbCdEf"))},
                {"name": "OLD", "valueFrom": format!("{}:password:AWSPREVIOUS:", sm("web/api-AbCdEf"))},
                {"name": "ELSEWHERE", "valueFrom": "arn:aws:ssm:us-east-1:210987654321:parameter/shared/x"}],
             "logConfiguration": {"logDriver": "splunk", "options": {"splunk-url": "https://splunk"},
                "secretOptions": [{"name": "splunk-token", "valueFrom": sm("web/splunk-XyZ123")}]}},
            {"name": "sidecar", "image": "envoy"},
            {"name": "private", "image": "registry.example.com/app",
             "repositoryCredentials": {"credentialsParameter": "registry/dockerhub"}}]
    });
    let mut f = Found::new(scope());
    f.services.push(FoundService {
        cluster: "prod".into(),
        name: "web".into(),
        deployment_controller: "ECS".into(),
        task_definition: "web-td:7".into(),
        definition: Some(td),
    });
    f.services.push(FoundService {
        cluster: "prod".into(),
        name: "blue-green".into(),
        deployment_controller: "CODE_DEPLOY".into(),
        task_definition: "bg:1".into(),
        definition: None,
    });
    f.roles.insert(
        "ecsTaskExecutionRole".into(),
        FoundRole {
            name: "ecsTaskExecutionRole".into(),
            arn: format!("arn:aws:iam::{ACCOUNT}:role/ecsTaskExecutionRole"),
            managed_policy_arns: vec!["arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy".into()],
            inline_policies: vec![],
        },
    );
    f.roles.insert(
        "web-app".into(),
        FoundRole {
            name: "web-app".into(),
            arn: format!("arn:aws:iam::{ACCOUNT}:role/app/web-app"),
            managed_policy_arns: vec![],
            inline_policies: vec![(
                "s3".into(),
                json!({"Version": "2012-10-17", "Statement": [
                    {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::web-assets/*",
                     "Condition": {"Bool": {"aws:SecureTransport": true}}},
                    {"Effect": "Deny", "NotAction": "s3:*", "Resource": "*"}]}),
            )],
        },
    );
    for (name, kind) in [("/web/db", "SecureString"), ("feature-flags", "String")] {
        f.parameters.insert(
            name.into(),
            FoundParameter { name: name.into(), kind: kind.into(), key_id: None, description: Some("by hand".into()) },
        );
    }
    for (id, name, key) in [
        (sm("web/api-AbCdEf"), "web/api", None),
        (sm("web/splunk-XyZ123"), "web/splunk", Some("alias/web")),
        ("registry/dockerhub".to_string(), "registry/dockerhub", None),
    ] {
        f.secrets.insert(
            id,
            FoundSecret {
                arn: sm(&format!("{name}-Qwerty")),
                name: name.into(),
                kms_key_id: key.map(str::to_string),
                description: None,
            },
        );
    }
    f
}

fn written(g: &Generated) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in &g.files {
        let p = dir.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    dir
}

#[test]
fn a_hand_wired_service_becomes_valid_manifests_that_mean_the_same_wiring() {
    let g = generate(&hand_wired());
    assert_eq!((g.services, g.parameters, g.secrets), (1, 2, 3), "{:#?}", g.files);
    let dir = written(&g);
    let loaded = crate::manifest::load(dir.path(), None);
    assert!(loaded.errors.is_empty(), "{:?}\n{:#?}", loaded.errors, g.files);
    let d = loaded.desired;
    let web = &d.services["web"];
    assert_eq!((web.cluster.as_str(), web.family.as_str()), ("prod", "web-td"));
    assert_eq!(web.execution_role.name, "ecsTaskExecutionRole");
    assert!(web.execution_role.adopt);
    let task = web.task_role.as_ref().expect("task role");
    assert!(task.role.adopt && task.statements.len() == 1, "the NotAction statement is left on the role");
    let text = g.files.iter().find(|(p, _)| p == "services/web.yaml").map(|(_, t)| t.as_str()).unwrap();
    assert!(text.contains("uses NotAction"), "{text}");
    assert!(text.contains("jsonKey: username") && text.contains("versionStage: AWSPREVIOUS"), "{text}");
    assert!(text.contains("parameter: /web/db") && text.contains("parameter: feature-flags"), "{text}");
    assert!(text.contains("valueFrom: arn:aws:ssm:us-east-1:210987654321:parameter/shared/x"), "{text}");
    assert!(text.contains("account 210987654321 region us-east-1"), "{text}");
    assert!(!text.contains("sidecar"), "a container that reads no secret is not declared");
    // Values are adopted, none is created.
    for p in d.parameters.values() {
        assert!(p.adopt && p.initial_value.is_none(), "{p:?}");
    }
    assert_eq!(d.parameters["feature-flags"].kind, crate::model::ParameterType::String);
    for s in d.secrets.values() {
        assert!(s.adopt && s.initial_value.is_none(), "{s:?}");
    }
    assert_eq!(d.secrets["web/splunk"].kms_key_id.as_deref(), Some("alias/web"));
    // What cannot be wired is shown commented out, with why.
    let bg = g.files.iter().find(|(p, _)| p == "services/blue-green.yaml").map(|(_, t)| t.as_str()).unwrap();
    assert!(bg.lines().all(|l| l.starts_with('#')) && bg.contains("CODE_DEPLOY"), "{bg}");
    assert_eq!(g.skipped.len(), 1);
}

#[test]
fn two_clusters_with_one_service_name_get_cluster_prefixed_names() {
    let mut f = hand_wired();
    f.services.truncate(1);
    let mut other = f.services[0].clone();
    other.cluster = format!("arn:aws:ecs:eu-west-1:{ACCOUNT}:cluster/staging");
    f.services.push(other);
    let g = generate(&f);
    let names: Vec<&str> = g.files.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(names, ["values.yaml", "services/prod-web.yaml", "services/staging-web.yaml"]);
    let dir = written(&g);
    let loaded = crate::manifest::load(dir.path(), None);
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    let staging = &loaded.desired.services["staging-web"];
    assert_eq!(staging.service_name, "web");
    // The shared family and roles stay the first Service's; the second gets its own.
    assert_eq!(staging.family, "staging-web");
    assert_eq!(staging.execution_role.name, "staging-web-execution");
    assert!(!staging.execution_role.adopt && staging.execution_role.managed_policy_arns.len() == 1);
    let task = staging.task_role.as_ref().unwrap();
    assert_eq!((task.role.name.as_str(), task.statements.len()), ("staging-web-task", 1));
    assert_eq!(loaded.desired.services["prod-web"].execution_role.name, "ecsTaskExecutionRole");
}

#[test]
fn a_service_that_reads_no_secret_or_uses_another_accounts_role_is_commented_out() {
    let mut f = hand_wired();
    f.services.truncate(1);
    let mut none = f.services[0].clone();
    none.name = "static".into();
    none.definition = Some(json!({"family": "static", "containerDefinitions": [{"name": "nginx", "image": "nginx"}]}));
    let mut foreign = f.services[0].clone();
    foreign.name = "foreign".into();
    foreign.definition.as_mut().unwrap()["executionRoleArn"] = json!("arn:aws:iam::210987654321:role/x");
    f.services.extend([none, foreign]);
    let g = generate(&f);
    let why: BTreeMap<_, _> = g.skipped.iter().cloned().collect();
    assert!(why["static"].contains("nothing to wire"), "{why:?}");
    assert!(why["foreign"].contains("another account"), "{why:?}");
    let dir = written(&g);
    let loaded = crate::manifest::load(dir.path(), None);
    assert!(loaded.errors.is_empty() && loaded.desired.services.len() == 1, "{:?}", loaded.errors);
}

#[test]
fn wanted_names_the_values_and_roles_of_this_account_only() {
    let f = hand_wired();
    let w = found::wanted(&f.services, &scope());
    assert_eq!(w.parameters.iter().map(String::as_str).collect::<Vec<_>>(), ["/web/db", "feature-flags"]);
    assert_eq!(w.secrets.len(), 3, "{:?}", w.secrets);
    assert_eq!(w.roles.get("web-app"), Some(&true));
    assert_eq!(w.roles.get("ecsTaskExecutionRole"), Some(&false));
    assert_eq!(found::parameter_names("arn:aws:ssm:r:1:parameter/db", "db"), ["db", "/db"]);
}
