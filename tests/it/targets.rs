//! Targets: one controller, three accounts and two regions. moto switches
//! accounts on STS AssumeRole (the credentials it hands out act in the role's
//! account), so what secretwire writes through each Target's role is read
//! back here through a session in that account and region.

use aws_config::BehaviorVersion;
use aws_sdk_sts::config::Credentials;

use crate::harness::*;

const SHARED: &str = "222222222222";
const WEST: &str = "333333333333";

/// An SDK configuration acting in `account` and `region` (moto: a session of any role there).
async fn sdk_in(moto: &Moto, account: &str, region: &str) -> aws_config::SdkConfig {
    let home = moto.sdk().await;
    let out = aws_sdk_sts::Client::new(&home)
        .assume_role()
        .role_arn(format!("arn:aws:iam::{account}:role/test-reader"))
        .role_session_name("test")
        .send()
        .await
        .unwrap();
    let c = out.credentials().unwrap();
    let creds = Credentials::new(c.access_key_id(), c.secret_access_key(), Some(c.session_token().into()), None, "t");
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(&moto.url)
        .region(aws_config::Region::new(region.to_string()))
        .credentials_provider(creds)
        .load()
        .await
}

/// A cluster and a service running a first revision with one container `app`.
async fn ecs_service(sdk: &aws_config::SdkConfig, cluster: &str, service: &str, family: &str) {
    use aws_sdk_ecs::types::ContainerDefinition;
    let ecs = aws_sdk_ecs::Client::new(sdk);
    ecs.create_cluster().cluster_name(cluster).send().await.unwrap();
    let app =
        ContainerDefinition::builder().name("app").image("public.ecr.aws/docker/library/httpd:2.4").memory(512).build();
    ecs.register_task_definition().family(family).container_definitions(app).send().await.unwrap();
    ecs.create_service()
        .cluster(cluster)
        .service_name(service)
        .task_definition(family)
        .desired_count(1)
        .send()
        .await
        .unwrap();
}

/// `(name, valueFrom)` of the container secrets of the revision a service runs.
async fn running_secrets(sdk: &aws_config::SdkConfig, cluster: &str, service: &str) -> Vec<(String, String)> {
    let ecs = aws_sdk_ecs::Client::new(sdk);
    let svc = ecs.describe_services().cluster(cluster).services(service).send().await.unwrap();
    let td = svc.services()[0].task_definition().unwrap().to_string();
    let td = ecs.describe_task_definition().task_definition(td).send().await.unwrap();
    let c = &td.task_definition().unwrap().container_definitions()[0];
    c.secrets().iter().map(|s| (s.name().to_string(), s.value_from().to_string())).collect()
}

async fn inline_policy(sdk: &aws_config::SdkConfig, role: &str) -> Option<serde_json::Value> {
    let p =
        aws_sdk_iam::Client::new(sdk).get_role_policy().role_name(role).policy_name("secretwire").send().await.ok()?;
    let doc = percent_encoding::percent_decode_str(p.policy_document()).decode_utf8_lossy().into_owned();
    Some(serde_json::from_str(&doc).unwrap())
}

fn statement<'a>(doc: &'a serde_json::Value, sid: &str) -> &'a serde_json::Value {
    doc["Statement"].as_array().unwrap().iter().find(|s| s["Sid"] == sid).unwrap_or_else(|| panic!("{sid} in {doc}"))
}

pub(crate) fn repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let manifests = format!(
        r#"apiVersion: secretwire.dev/v1alpha1
kind: Target
metadata: {{ name: shared }}
spec:
  account: "{SHARED}"
  region: us-east-1
  roleArn: arn:aws:iam::{SHARED}:role/secretwire-target
  externalId: secretwire-ext-1
---
apiVersion: secretwire.dev/v1alpha1
kind: Target
metadata: {{ name: apps-west }}
spec:
  account: "{WEST}"
  region: us-west-2
  roleArn: arn:aws:iam::{WEST}:role/secretwire-target
---
apiVersion: secretwire.dev/v1alpha1
kind: Secret
metadata: {{ name: shared/db }}
spec:
  target: shared
  kmsKeyId: alias/shared
  initialValue: {{ generate: {{ length: 32 }} }}
---
apiVersion: secretwire.dev/v1alpha1
kind: Secret
metadata: {{ name: shared/legacy }}
spec:
  target: shared
  initialValue: {{ generate: {{ length: 16 }} }}
---
apiVersion: secretwire.dev/v1alpha1
kind: Parameter
metadata: {{ name: /west/api-token }}
spec:
  target: apps-west
  initialValue: {{ generate: {{ length: 24 }} }}
---
apiVersion: secretwire.dev/v1alpha1
kind: Service
metadata: {{ name: west-web }}
spec:
  target: apps-west
  cluster: apps
  serviceName: web
  containers:
    - name: app
      secrets:
        - {{ name: DB, secret: shared/db }}
        - {{ name: TOKEN, parameter: /west/api-token }}
---
apiVersion: secretwire.dev/v1alpha1
kind: Service
metadata: {{ name: home-api }}
spec:
  cluster: home
  serviceName: api
  containers:
    - name: app
      secrets:
        - {{ name: DB, secret: shared/db }}
        - {{ name: LEGACY, secret: shared/legacy }}
"#
    );
    std::fs::write(dir.path().join("fleet.yaml"), manifests).unwrap();
    dir
}

#[tokio::test]
async fn one_controller_applies_to_three_accounts_and_two_regions_through_their_roles() {
    let moto = Moto::start();
    let home = moto.sdk().await;
    let shared = sdk_in(&moto, SHARED, "us-east-1").await;
    let west = sdk_in(&moto, WEST, "us-west-2").await;
    let kms = aws_sdk_kms::Client::new(&shared);
    let key = kms.create_key().description("shared secrets").send().await.unwrap();
    let key_arn = key.key_metadata().unwrap().arn().unwrap().to_string();
    kms.create_alias().alias_name("alias/shared").target_key_id(&key_arn).send().await.unwrap();
    ecs_service(&west, "apps", "web", "web").await;
    ecs_service(&home, "home", "api", "api").await;
    let repo = repo();
    let dir = repo.path().display().to_string();

    // The plan names the one value no other account can read.
    let plan = moto.secretwire(&["plan", "-m", &dir], &[]);
    plan.assert_code(0);
    assert!(
        plan.stdout.contains("Secret/shared/legacy warning: is in account 222222222222 under the AWS managed key"),
        "{}",
        plan.stdout
    );
    assert!(!plan.stdout.contains("Secret/shared/db warning"), "a customer managed key is readable: {}", plan.stdout);

    moto.secretwire(&["apply", "-m", &dir], &[]).assert_code(0);

    // Each value exists in its own account and region, and nowhere else.
    let sm = |sdk: &aws_config::SdkConfig| aws_sdk_secretsmanager::Client::new(sdk);
    let db = sm(&shared).describe_secret().secret_id("shared/db").send().await.unwrap();
    let db_arn = db.arn().unwrap().to_string();
    assert!(db_arn.starts_with(&format!("arn:aws:secretsmanager:us-east-1:{SHARED}:secret:shared/db-")), "{db_arn}");
    assert_eq!(db.kms_key_id(), Some("alias/shared"));
    let tag = |tags: &[aws_sdk_secretsmanager::types::Tag], k: &str| {
        tags.iter().find(|t| t.key() == Some(k)).and_then(|t| t.value()).map(str::to_string)
    };
    assert_eq!(tag(db.tags(), "secretwire.dev/managed-by").as_deref(), Some("default/shared"), "owned per target");
    assert!(
        sm(&home).describe_secret().secret_id("shared/db").send().await.is_err(),
        "not in the controller's account"
    );
    let legacy_arn =
        sm(&shared).describe_secret().secret_id("shared/legacy").send().await.unwrap().arn().unwrap().to_string();
    let ssm = |sdk: &aws_config::SdkConfig| aws_sdk_ssm::Client::new(sdk);
    assert!(ssm(&west).get_parameter().name("/west/api-token").send().await.is_ok());
    let west_east = sdk_in(&moto, WEST, "us-east-1").await;
    assert!(ssm(&west_east).get_parameter().name("/west/api-token").send().await.is_err(), "only in us-west-2");
    assert!(ssm(&home).get_parameter().name("/west/api-token").send().await.is_err());

    // The west service reads the shared account's secret by its full ARN,
    // and its role (in its own account) grants exactly that, with the key
    // decrypting through Secrets Manager in the key's region.
    let token_arn = format!("arn:aws:ssm:us-west-2:{WEST}:parameter/west/api-token");
    assert_eq!(
        running_secrets(&west, "apps", "web").await,
        vec![("DB".to_string(), db_arn.clone()), ("TOKEN".to_string(), token_arn.clone())]
    );
    let policy = inline_policy(&west, "west-web-execution").await.expect("role in the west account");
    assert_eq!(statement(&policy, "ReadSecrets")["Resource"], serde_json::json!([db_arn]));
    assert_eq!(statement(&policy, "ReadParameters")["Resource"], serde_json::json!([token_arn]));
    let decrypt = statement(&policy, "DecryptSecrets");
    assert_eq!(decrypt["Resource"], serde_json::json!([key_arn]));
    assert_eq!(decrypt["Condition"]["StringEquals"]["kms:ViaService"], "secretsmanager.us-east-1.amazonaws.com");
    assert!(inline_policy(&home, "west-web-execution").await.is_none(), "not in the controller's account");
    assert!(inline_policy(&shared, "west-web-execution").await.is_none());

    // The controller's own service reads the same secret across accounts.
    let mut home_secrets = running_secrets(&home, "home", "api").await;
    home_secrets.sort();
    assert_eq!(home_secrets, vec![("DB".to_string(), db_arn.clone()), ("LEGACY".to_string(), legacy_arn)]);

    // Level: the second apply writes nothing in any account.
    let again = moto.secretwire(&["apply", "-m", &dir, "--output", "json"], &[]);
    again.assert_code(0);
    assert_eq!(again.json()["awsWriteCount"], 0, "{}", again.stdout);

    // The controller's policy may assume exactly the Targets' roles; each
    // Target's role policy and trust policy are printed on their own.
    let p = moto.secretwire(&["policy", "-m", &dir], &[]);
    p.assert_code(0);
    let doc = p.json();
    assert_eq!(
        statement(&doc, "AssumeTargetRoles")["Resource"],
        serde_json::json!([
            format!("arn:aws:iam::{SHARED}:role/secretwire-target"),
            format!("arn:aws:iam::{WEST}:role/secretwire-target")
        ])
    );
    assert!(!p.stdout.contains("CreateParameters"), "the controller's own account declares no parameter: {}", p.stdout);
    let t = moto.secretwire(&["policy", "-m", &dir, "--target", "shared"], &[]);
    t.assert_code(0);
    let t = t.json();
    assert_eq!(t["trustPolicy"]["Statement"][0]["Condition"]["StringEquals"]["sts:ExternalId"], "secretwire-ext-1");
    assert!(t["trustPolicy"]["Statement"][0]["Principal"]["AWS"].as_str().unwrap().contains(":123456789012:"));
    let create = statement(&t["rolePolicy"], "CreateSecrets");
    assert!(
        create.to_string().contains(&format!("arn:aws:secretsmanager:us-east-1:{SHARED}:secret:shared/db-??????")),
        "{create}"
    );
    let w = moto.secretwire(&["policy", "-m", &dir, "--target", "apps-west"], &[]).json();
    assert!(w["trustPolicy"]["Statement"][0].get("Condition").is_none(), "no external id: {w}");
    assert!(w["rolePolicy"].to_string().contains(&format!("arn:aws:iam::{WEST}:role/west-web-execution")), "{w}");
}

/// An EventBridge event as it reaches the controller's queue from another
/// account (moto delivers no event across accounts: the test plays
/// EventBridge's delivery, the envelope is AWS's).
fn foreign_event(account: &str, region: &str, source: &str, detail_type: &str, detail: serde_json::Value) -> String {
    serde_json::json!({
        "version": "0",
        "id": format!("{account}-{}", epoch_now()),
        "detail-type": detail_type,
        "source": source,
        "account": account,
        "time": rfc3339_now(),
        "region": region,
        "resources": [],
        "detail": detail
    })
    .to_string()
}

async fn force(sdk: &aws_config::SdkConfig, cluster: &str, service: &str) {
    let ecs = aws_sdk_ecs::Client::new(sdk);
    ecs.update_service().cluster(cluster).service(service).force_new_deployment(true).send().await.unwrap();
}

#[tokio::test]
async fn a_rotation_in_the_shared_account_redeploys_its_readers_in_every_account_once() {
    let moto = Moto::start();
    let home = moto.sdk().await;
    let shared = sdk_in(&moto, SHARED, "us-east-1").await;
    let west = sdk_in(&moto, WEST, "us-west-2").await;
    let kms = aws_sdk_kms::Client::new(&shared);
    let key = kms.create_key().send().await.unwrap().key_metadata().unwrap().arn().unwrap().to_string();
    kms.create_alias().alias_name("alias/shared").target_key_id(&key).send().await.unwrap();
    ecs_service(&west, "apps", "web", "web").await;
    ecs_service(&home, "home", "api", "api").await;
    let repo = repo();
    moto.secretwire(&["apply", "-m", &repo.path().display().to_string()], &[]).assert_code(0);
    // Deployments strictly newer than every value: nothing is stale.
    tick_past_a_second();
    force(&west, "apps", "web").await;
    force(&home, "home", "api").await;
    tick_past_a_second();

    let run = moto.start_run(repo.path(), &["--debounce", "1s", "--resync-interval", "2s"]);
    run.wait_ready();
    let status = run.status();
    assert_eq!(status["targets"]["shared"]["connected"], true, "{status}");
    assert_eq!(status["targets"]["apps-west"]["region"], "us-west-2", "{status}");
    assert_eq!((run.redeploys("west-web"), run.redeploys("home-api")), (0, 0), "{}", run.log());

    // Each Target's rules forward its events: straight to the queue from the
    // controller's region, through the controller's default bus from another.
    let sqs = aws_sdk_sqs::Client::new(&home);
    let url = sqs.get_queue_url().queue_name("secretwire-default-events").send().await.unwrap().queue_url.unwrap();
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
        .send()
        .await
        .unwrap();
    let attrs = attrs.attributes().unwrap();
    let queue_arn = attrs[&aws_sdk_sqs::types::QueueAttributeName::QueueArn].clone();
    let home_bus = "arn:aws:events:us-east-1:123456789012:event-bus/default";
    for (sdk, account, dest, action) in
        [(&shared, SHARED, queue_arn.as_str(), "sqs:SendMessage"), (&west, WEST, home_bus, "events:PutEvents")]
    {
        let role = if account == SHARED { "secretwire-default-fwd-shared" } else { "secretwire-default-fwd-apps-west" };
        let role_arn = format!("arn:aws:iam::{account}:role/{role}");
        let doc = inline_policy(sdk, role).await.unwrap_or_else(|| panic!("{role} in {account}"));
        assert_eq!(doc["Statement"][0]["Action"], action, "{doc}");
        assert_eq!(doc["Statement"][0]["Resource"], dest, "{doc}");
        let events = aws_sdk_eventbridge::Client::new(sdk);
        for suffix in ["secretsmanager", "ssm", "deployments"] {
            let rule = format!("secretwire-default-{suffix}");
            let targets = events.list_targets_by_rule().rule(&rule).send().await.unwrap();
            let t = &targets.targets()[0];
            assert_eq!((t.arn(), t.role_arn()), (dest, Some(role_arn.as_str())), "{rule} in {account}");
        }
    }
    let policy: serde_json::Value =
        serde_json::from_str(&attrs[&aws_sdk_sqs::types::QueueAttributeName::Policy]).unwrap();
    let allowed = policy["Statement"].as_array().unwrap().iter().find(|s| s["Sid"] == "SecretwireTargets").unwrap();
    assert_eq!(
        allowed["Principal"]["AWS"],
        serde_json::json!([format!("arn:aws:iam::{SHARED}:role/secretwire-default-fwd-shared")]),
        "only the Target of this region sends to the queue itself: {policy}"
    );
    let bus = aws_sdk_eventbridge::Client::new(&home).describe_event_bus().name("default").send().await.unwrap();
    let bus: serde_json::Value = serde_json::from_str(bus.policy().unwrap()).unwrap();
    let st = bus["Statement"].as_array().unwrap().iter().find(|s| s["Sid"] == "secretwire-default-apps-west");
    assert!(st.is_some_and(|s| s.to_string().contains(WEST)), "{bus}");

    // The shared account rotates its secret; the event arrives twice (at-least-once delivery).
    let sm = aws_sdk_secretsmanager::Client::new(&shared);
    let db_arn = sm.describe_secret().secret_id("shared/db").send().await.unwrap().arn().unwrap().to_string();
    let rotated_at = epoch_now().floor();
    sm.put_secret_value().secret_id(&db_arn).secret_string("rotated-value").send().await.unwrap();
    let detail = serde_json::json!({
        "eventVersion": "1.05",
        "userIdentity": {"accountId": SHARED, "invokedBy": "secretsmanager.amazonaws.com"},
        "eventSource": "secretsmanager.amazonaws.com",
        "eventName": "RotationSucceeded",
        "awsRegion": "us-east-1",
        "additionalEventData": {"SecretId": db_arn},
        "eventType": "AwsServiceEvent",
        "recipientAccountId": SHARED
    });
    let body = foreign_event(SHARED, "us-east-1", "aws.secretsmanager", "AWS Service Event via CloudTrail", detail);
    for _ in 0..2 {
        send_to_queue(&home, "secretwire-default-events", &body).await;
    }
    eventually!("both readers redeployed", 60, run, run.redeploys("west-web") == 1 && run.redeploys("home-api") == 1);
    run.wait_passes(1);
    assert_eq!((run.redeploys("west-web"), run.redeploys("home-api")), (1, 1), "once each: {}", run.log());
    // The redeploy happened in the west account itself (its PRIMARY deployment is new).
    let west_svc = aws_sdk_ecs::Client::new(&west).describe_services().cluster("apps").services("web").send().await;
    let west_svc = west_svc.unwrap();
    let primary = west_svc.services()[0].deployments().iter().find(|d| d.status() == Some("PRIMARY")).unwrap();
    assert!(primary.created_at().unwrap().as_secs_f64() >= rotated_at, "{primary:?}");

    // A parameter changes in the west account: only its reader there is redeployed.
    let ssm = aws_sdk_ssm::Client::new(&west);
    ssm.put_parameter().name("/west/api-token").value("new").overwrite(true).send().await.unwrap();
    let detail = serde_json::json!({"operation": "Update", "name": "/west/api-token", "type": "String"});
    let body = foreign_event(WEST, "us-west-2", "aws.ssm", "Parameter Store Change", detail);
    send_to_queue(&home, "secretwire-default-events", &body).await;
    eventually!("the west reader redeployed", 60, run, run.redeploys("west-web") == 2);
    run.wait_passes(1);
    assert_eq!(run.redeploys("home-api"), 1, "{}", run.log());

    // The same parameter name in an account secretwire has no Target for changes nothing.
    let body = foreign_event(
        "444444444444",
        "us-west-2",
        "aws.ssm",
        "Parameter Store Change",
        serde_json::json!({"operation": "Update", "name": "/west/api-token", "type": "String"}),
    );
    send_to_queue(&home, "secretwire-default-events", &body).await;
    run.wait_passes(1);
    assert_eq!(run.redeploys("west-web"), 2, "{}", run.log());

    // A rotation whose event never arrives: the stale backstop reads the
    // change time through the shared account's role and redeploys both readers, once.
    tick_past_a_second();
    sm.put_secret_value().secret_id(&db_arn).secret_string("rotated-again").send().await.unwrap();
    eventually!("the backstop redeployed both readers", 60, run, {
        run.redeploys("west-web") == 3 && run.redeploys("home-api") == 2
    });
    run.wait_passes(2);
    assert_eq!((run.redeploys("west-web"), run.redeploys("home-api")), (3, 2), "once each: {}", run.log());
    let web = &run.status()["objects"]["Service/west-web"];
    assert_eq!(web["lastRedeploy"]["reason"], "stale", "{web}");
    assert_eq!(run.stop().0, 0);
}
