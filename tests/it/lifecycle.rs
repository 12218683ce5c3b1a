//! Lifecycle: rotation declared on a Secret. moto cannot serve rotation
//! (`awsshape::Shape::rotation`), so every test here talks to AWS through a
//! shaped proxy that answers RotateSecret and CancelRotateSecret and reports
//! the rotation fields as AWS documents them.

use crate::awsshape::Shape;
use crate::faultproxy::FaultProxy;
use crate::harness::*;

const FN: &str = "arn:aws:lambda:us-east-1:123456789012:function:rotate-web-api";

fn shaped_proxy(moto: &Moto) -> FaultProxy {
    let shape = if aws_shape_mode() { Shape::aws() } else { Shape::scripted_only() };
    FaultProxy::start_shaped(&moto.url, Default::default(), 0, Some(shape))
}

fn through(moto: &Moto, proxy: &FaultProxy, args: &[&str]) -> Run {
    let mut cmd = moto.command();
    cmd.env("AWS_ENDPOINT_URL", &proxy.url).args(args);
    for (k, v) in demo_env() {
        cmd.env(k, v);
    }
    Run::from(cmd.output().unwrap())
}

/// Sets (or with `None` removes) `spec.rotation` of web/api in the example repo.
fn set_rotation(repo: &tempfile::TempDir, rotation: Option<&str>) {
    let path = repo.path().join("values.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let start = text.find("  name: web/api\nspec:\n").unwrap() + "  name: web/api\nspec:\n".len();
    let rest = &text[start..];
    let rest = match rest.strip_prefix("  rotation:") {
        Some(r) => &r[r.find("\n  description:").unwrap() + 1..],
        None => rest,
    };
    let field = rotation.map(|r| format!("  rotation: {r}\n")).unwrap_or_default();
    std::fs::write(&path, format!("{}{field}{rest}", &text[..start])).unwrap();
}

fn count(proxy: &FaultProxy, operation: &str) -> usize {
    proxy.calls().iter().filter(|c| c.operation == operation).count()
}

/// The printed policy allows `action` on web/api.
async fn policy_allows(moto: &Moto, proxy: &FaultProxy, dir: &str, action: &str, sdk: &aws_config::SdkConfig) -> bool {
    let policy = through(moto, proxy, &["policy", "-m", dir]);
    policy.assert_code(0);
    secretwire::policy::allows(&policy.json(), action, &secret_arn(sdk, "web/api").await)
}

#[tokio::test]
async fn rotation_is_configured_changed_and_cancelled_without_ever_starting_one() {
    let moto = Moto::start();
    moto.bootstrap();
    let proxy = shaped_proxy(&moto);
    let sdk = moto.sdk().await;
    let repo = example_repo();
    let dir = repo.path().display().to_string();
    set_rotation(&repo, Some(&format!("{{ lambdaArn: '{FN}', schedule: 'rate(30 days)', duration: 3h }}")));

    let plan = through(&moto, &proxy, &["plan", "-m", &dir]);
    plan.assert_code(0);
    assert!(plan.stdout.contains("rotation: rate(30 days), window 3h by rotate-web-api"), "{}", plan.stdout);
    through(&moto, &proxy, &["apply", "-m", &dir]).assert_code(0);
    let r = proxy.rotation("web/api").expect("RotateSecret was sent");
    assert!(r.enabled);
    assert_eq!(r.lambda_arn, FN);
    assert_eq!(
        r.rules,
        serde_json::json!({"ScheduleExpression": "rate(30 days)", "Duration": "3h"}),
        "never both forms"
    );
    assert_eq!(r.started, 0, "configuring rotation started none (RotateImmediately: false)");
    assert!(policy_allows(&moto, &proxy, &dir, "secretsmanager:RotateSecret", &sdk).await);

    let again = through(&moto, &proxy, &["apply", "-m", &dir, "--output", "json"]);
    again.assert_code(0);
    assert_eq!(again.json()["awsWriteCount"], 0, "a second apply writes nothing: {}", again.stdout);
    assert_eq!(count(&proxy, "RotateSecret"), 1);

    // A schedule change is a change like any other; it starts no rotation either.
    set_rotation(&repo, Some(&format!("{{ lambdaArn: '{FN}', schedule: 'cron(0 4 ? * SUN *)', duration: 2h }}")));
    let plan = through(&moto, &proxy, &["plan", "-m", &dir, "--detailed-exitcode"]);
    plan.assert_code(2);
    assert!(
        plan.stdout
            .contains("rotation: cron(0 4 ? * SUN *), window 2h by rotate-web-api (now rate(30 days), window 3h"),
        "{}",
        plan.stdout
    );
    through(&moto, &proxy, &["apply", "-m", &dir]).assert_code(0);
    let r = proxy.rotation("web/api").unwrap();
    assert_eq!(r.rules["ScheduleExpression"], "cron(0 4 ? * SUN *)");
    assert_eq!(r.started, 0, "a schedule change started no rotation");

    // No `rotation` field: what AWS has is left alone.
    set_rotation(&repo, None);
    let left = through(&moto, &proxy, &["apply", "-m", &dir, "--output", "json"]);
    assert_eq!(left.json()["awsWriteCount"], 0, "{}", left.stdout);
    assert!(proxy.rotation("web/api").unwrap().enabled);

    set_rotation(&repo, Some("{ enabled: false }"));
    through(&moto, &proxy, &["apply", "-m", &dir]).assert_code(0);
    assert!(!proxy.rotation("web/api").unwrap().enabled, "rotation cancelled");
    assert_eq!(count(&proxy, "CancelRotateSecret"), 1);
    let again = through(&moto, &proxy, &["apply", "-m", &dir, "--output", "json"]);
    assert_eq!(again.json()["awsWriteCount"], 0, "{}", again.stdout);
    assert!(policy_allows(&moto, &proxy, &dir, "secretsmanager:CancelRotateSecret", &sdk).await);
    assert!(!policy_allows(&moto, &proxy, &dir, "secretsmanager:RotateSecret", &sdk).await, "only what is declared");
}

#[tokio::test]
async fn rotate_immediately_is_sent_only_when_the_manifest_asks_and_a_new_secret_gets_its_rotation() {
    let moto = Moto::start();
    moto.bootstrap();
    let proxy = shaped_proxy(&moto);
    let repo = example_repo();
    let dir = repo.path().display().to_string();
    // Created and configured in one apply.
    set_rotation(&repo, Some(&format!("{{ lambdaArn: '{FN}', schedule: 'rate(12 hours)', rotateImmediately: true }}")));
    through(&moto, &proxy, &["apply", "-m", &dir]).assert_code(0);
    let r = proxy.rotation("web/api").unwrap();
    assert_eq!(r.started, 1, "asked for, one rotation started");
    assert_eq!(r.rules, serde_json::json!({"ScheduleExpression": "rate(12 hours)"}));
    through(&moto, &proxy, &["apply", "-m", &dir]).assert_code(0);
    assert_eq!(proxy.rotation("web/api").unwrap().started, 1, "and not again");
}
