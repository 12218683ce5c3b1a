//! Prune: what leaves the repo leaves AWS, as each object's recorded
//! deletion policy says, and only what this controller owns, no longer
//! declared, and no longer used. The guard keeps an empty checkout, a
//! directory of one file or a broken one from wiping an account.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::awsshape::Shape;
use crate::faultproxy::FaultProxy;
use crate::harness::*;

/// Four values no service reads, one of each policy and kind.
const EXTRA: &str = "apiVersion: secretwire.dev/v1alpha1
kind: Parameter
metadata: { name: /extra/deleted }
spec:
  deletionPolicy: Delete
  initialValue: { generate: { length: 16 } }
---
apiVersion: secretwire.dev/v1alpha1
kind: Parameter
metadata: { name: /extra/kept }
spec:
  initialValue: { generate: { length: 16 } }
  tags: { team: storefront }
---
apiVersion: secretwire.dev/v1alpha1
kind: Secret
metadata: { name: extra/deleted }
spec:
  deletionPolicy: Delete
  recoveryWindowDays: 7
  initialValue: { generate: { length: 16 } }
---
apiVersion: secretwire.dev/v1alpha1
kind: Secret
metadata: { name: extra/kept }
spec:
  initialValue: { generate: { length: 16 } }
";

/// moto, and in AWS-shape mode a proxy of its own whose ListSecrets lag is
/// seconds, not AWS's five minutes: a secret created moments ago is left out
/// of the listing (so it cannot be seen as undeclared) until the lag passed.
struct Account {
    moto: Moto,
    proxy: Option<FaultProxy>,
}

impl Account {
    fn start() -> Self {
        let moto = Moto::start();
        let proxy = aws_shape_mode().then(|| {
            let shape = Shape { list_secrets_lag: Some(Duration::from_secs(3)), ..Shape::aws() };
            FaultProxy::start_shaped(&moto.url, Default::default(), 0, Some(shape))
        });
        Self { moto, proxy }
    }

    fn sw(&self, args: &[&str]) -> Run {
        let mut cmd = self.moto.command();
        if let Some(p) = &self.proxy {
            cmd.env("AWS_ENDPOINT_URL", &p.url);
        }
        for (k, v) in demo_env() {
            cmd.env(k, v);
        }
        Run::from(cmd.args(args).output().unwrap())
    }

    /// Plans `dir` until the plan shows `needle` (ListSecrets caught up).
    fn plan_until(&self, dir: &str, needle: &str) -> Run {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let plan = self.sw(&["plan", "-m", dir, "--max-prune", "100"]);
            if plan.stdout.contains(needle) || Instant::now() > deadline {
                assert!(plan.stdout.contains(needle), "{needle}\n{}", plan.stdout);
                return plan;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

/// The example and EXTRA applied; returns the repo.
async fn applied_with_extra(acct: &Account) -> tempfile::TempDir {
    acct.moto.bootstrap();
    let repo = example_repo();
    std::fs::write(repo.path().join("extra.yaml"), EXTRA).unwrap();
    acct.sw(&["apply", "-m", &repo.path().display().to_string()]).assert_code(0);
    repo
}

async fn secret_tags(sdk: &aws_config::SdkConfig, name: &str) -> BTreeMap<String, String> {
    let sm = aws_sdk_secretsmanager::Client::new(sdk);
    let d = sm.describe_secret().secret_id(name).send().await.unwrap();
    d.tags()
        .iter()
        .map(|t| (t.key().unwrap_or_default().to_string(), t.value().unwrap_or_default().to_string()))
        .collect()
}

async fn parameter_exists(sdk: &aws_config::SdkConfig, name: &str) -> bool {
    let ssm = aws_sdk_ssm::Client::new(sdk);
    let filter =
        aws_sdk_ssm::types::ParameterStringFilter::builder().key("Name").option("Equals").values(name).build().unwrap();
    !ssm.describe_parameters().parameter_filters(filter).send().await.unwrap().parameters().is_empty()
}

/// Whether the secret is scheduled for deletion, and in how many days.
async fn deletion_in_days(sdk: &aws_config::SdkConfig, name: &str) -> Option<f64> {
    let sm = aws_sdk_secretsmanager::Client::new(sdk);
    let d = sm.describe_secret().secret_id(name).send().await.unwrap();
    d.deleted_date().map(|t| (t.as_secs_f64() - epoch_now()) / 86400.0)
}

fn ours(tags: &BTreeMap<String, String>) -> bool {
    tags.keys().any(|k| k.starts_with("secretwire.dev/"))
}

async fn role_exists(sdk: &aws_config::SdkConfig, name: &str) -> bool {
    aws_sdk_iam::Client::new(sdk).get_role().role_name(name).send().await.is_ok()
}

#[tokio::test]
async fn values_that_leave_the_repo_are_deleted_or_let_go_of_and_a_deleted_secret_declared_again_is_restored() {
    let acct = Account::start();
    let repo = applied_with_extra(&acct).await;
    let dir = repo.path().display().to_string();
    let sdk = acct.moto.sdk().await;
    let arn_before = secret_arn(&sdk, "extra/deleted").await;
    let recorded = secret_tags(&sdk, "extra/deleted").await;
    assert_eq!(recorded.get("secretwire.dev/deletion-policy").map(String::as_str), Some("Delete"));
    assert_eq!(recorded.get("secretwire.dev/recovery-window-days").map(String::as_str), Some("7"));
    assert_eq!(parameter_tags(&sdk, "/extra/kept").await["secretwire.dev/deletion-policy"], "Retain");
    std::fs::remove_file(repo.path().join("extra.yaml")).unwrap();

    acct.plan_until(&dir, "- secret extra/kept");
    let plan = acct.sw(&["plan", "-m", &dir, "--detailed-exitcode"]);
    plan.assert_code(2);
    for line in [
        "- ssm parameter /extra/deleted: delete",
        "- secret extra/deleted: delete, recoverable for 7 days",
        "- ssm parameter /extra/kept: retain: secretwire.dev/* tags removed; declaring it again needs adopt: true",
        "- secret extra/kept: retain",
    ] {
        assert!(plan.stdout.contains(line), "{line}\n{}", plan.stdout);
    }
    // 4 of the 11 owned objects: more than 25%, so the default guard refuses.
    assert!(
        plan.stdout.contains("Prune refused: 4 objects would be pruned, more than --max-prune 2"),
        "{}",
        plan.stdout
    );
    // Without --prune nothing goes.
    acct.sw(&["apply", "-m", &dir, "--max-prune", "4"]).assert_code(0);
    assert!(parameter_exists(&sdk, "/extra/deleted").await);

    let pruned = acct.sw(&["apply", "-m", &dir, "--prune", "--max-prune", "4"]);
    pruned.assert_code(0);
    assert!(pruned.stdout.contains("pruned  Parameter//extra/deleted: 1 writes"), "{}", pruned.stdout);
    assert!(!parameter_exists(&sdk, "/extra/deleted").await, "deleted");
    let days = deletion_in_days(&sdk, "extra/deleted").await.expect("scheduled for deletion, not gone");
    assert!((6.9..7.1).contains(&days), "the declared recovery window: {days}");
    let kept = parameter_tags(&sdk, "/extra/kept").await;
    assert!(!ours(&kept) && kept["team"] == "storefront", "only our tags removed: {kept:?}");
    assert!(!ours(&secret_tags(&sdk, "extra/kept").await));
    assert!(deletion_in_days(&sdk, "extra/kept").await.is_none(), "retained");
    for declared in ["web/api", "web/splunk-token", "registry/dockerhub"] {
        assert!(deletion_in_days(&sdk, declared).await.is_none() && ours(&secret_tags(&sdk, declared).await));
    }
    let again = acct.sw(&["apply", "-m", &dir, "--prune", "--max-prune", "4", "--output", "json"]);
    assert_eq!(again.json()["awsWriteCount"], 0, "nothing pruned twice: {}", again.stdout);

    // Declared again: the secret comes back with its ARN; the retained values need adopt.
    std::fs::write(repo.path().join("extra.yaml"), EXTRA).unwrap();
    let back = acct.sw(&["apply", "-m", &dir]);
    back.assert_code(1);
    assert!(back.stdout.contains("restore: scheduled for deletion, declared again"), "{}", back.stdout);
    assert!(back.stdout.contains("not adopted (set adopt: true"), "{}", back.stdout);
    assert_eq!(deletion_in_days(&sdk, "extra/deleted").await, None, "restored");
    assert_eq!(secret_arn(&sdk, "extra/deleted").await, arn_before, "readers keep their ARN");
    std::fs::write(repo.path().join("extra.yaml"), EXTRA.replace("  initialValue:", "  adopt: true\n  initialValue:"))
        .unwrap();
    acct.sw(&["apply", "-m", &dir]).assert_code(0);
    assert!(ours(&secret_tags(&sdk, "extra/kept").await) && ours(&parameter_tags(&sdk, "/extra/kept").await));
}

#[tokio::test]
async fn the_guard_refuses_an_empty_directory_a_directory_of_one_file_and_sees_no_other_controllers_objects() {
    let acct = Account::start();
    let repo = applied_with_extra(&acct).await;
    let sdk = acct.moto.sdk().await;
    let empty = tempfile::tempdir().unwrap();
    acct.plan_until(&empty.path().display().to_string(), "- secret extra/kept");
    let run = acct.sw(&["apply", "-m", &empty.path().display().to_string(), "--prune", "--max-prune", "100"]);
    run.assert_code(1);
    assert!(run.stdout.contains("Prune refused: the manifests declare nothing"), "{}", run.stdout);
    assert!(run.stderr.contains("Prune refused"), "logged: {}", run.stderr);

    let one = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(one.path().join("taskdefs")).unwrap();
    std::fs::copy(repo.path().join("services/web.yaml"), one.path().join("web.yaml")).unwrap();
    std::fs::copy(repo.path().join("services/taskdefs/web.json"), one.path().join("taskdefs/web.json")).unwrap();
    let run = acct.sw(&["apply", "-m", &one.path().display().to_string(), "--prune"]);
    run.assert_code(1);
    // The four extras, and the four values the example declared (Retain: let go of, even while read).
    assert!(run.stdout.contains("Prune refused: 8 objects would be pruned, more than --max-prune 3"), "{}", run.stdout);
    // What the one service still reads, or what a deployment still runs, waits even so.
    assert!(run.stdout.contains("- secret registry/dockerhub: retain"), "{}", run.stdout);
    assert!(
        run.stdout.contains("- iam role worker-execution: waits: ECS service prod/worker still runs worker:"),
        "{}",
        run.stdout
    );
    for name in ["extra/deleted", "extra/kept", "web/api"] {
        assert!(ours(&secret_tags(&sdk, name).await) && deletion_in_days(&sdk, name).await.is_none(), "{name}");
    }
    assert!(parameter_exists(&sdk, "/extra/deleted").await && role_exists(&sdk, "worker-execution").await);

    let other =
        acct.sw(&["plan", "-m", &repo.path().display().to_string(), "--controller-id", "other", "--max-prune", "100"]);
    assert!(
        !other.stdout.contains("Not declared any more"),
        "another controller's objects are not its to prune: {}",
        other.stdout
    );
}

#[tokio::test]
async fn a_removed_services_role_waits_for_a_deployment_that_no_longer_names_it_and_its_revisions_go() {
    let acct = Account::start();
    let repo = applied_with_extra(&acct).await;
    std::fs::remove_file(repo.path().join("extra.yaml")).unwrap();
    std::fs::remove_file(repo.path().join("services/worker.yaml")).unwrap();
    let dir = repo.path().display().to_string();
    let sdk = acct.moto.sdk().await;
    let ecs = aws_sdk_ecs::Client::new(&sdk);
    let run = acct.sw(&["apply", "-m", &dir, "--prune", "--max-prune", "10"]);
    run.assert_code(0);
    assert!(
        run.stdout.contains(
            "- iam role worker-execution: waits: ECS service prod/worker still runs worker:2, which names it"
        ),
        "{}",
        run.stdout
    );
    assert!(role_exists(&sdk, "worker-execution").await, "the service still runs it");

    worker_deploys_its_own_revision(&sdk).await;
    let recording = FaultProxy::start(acct.endpoint(), Default::default(), 0);
    let run = acct.apply_through(&recording, &["-m", &dir, "--prune", "--max-prune", "10"]);
    run.assert_code(0);
    assert!(run.stdout.contains("- iam role worker-execution: delete: inline policy secretwire"), "{}", run.stdout);
    for op in ["DeleteRolePolicy", "DeleteRole", "DeregisterTaskDefinition"] {
        assert!(recording.calls().iter().any(|c| c.operation == op), "{op}");
    }
    assert_policy_covers(&acct, &dir, &recording);
    assert!(!role_exists(&sdk, "worker-execution").await, "deleted once no deployment names it");
    // The revision secretwire registered for the worker goes; the bootstrap's and the pipeline's stay.
    assert_eq!(active_revisions(&sdk, "worker").await, ["worker:1", "worker:3"], "{}", run.stdout);
    let svc = ecs.describe_services().cluster("prod").services("worker").send().await.unwrap();
    assert_eq!(svc.services()[0].status(), Some("ACTIVE"), "the ECS service itself is never deleted");
    let again = acct.sw(&["apply", "-m", &dir, "--prune", "--max-prune", "10", "--output", "json"]);
    assert_eq!(again.json()["awsWriteCount"], 0, "{}", again.stdout);
}

#[tokio::test]
async fn thirty_revisions_are_pruned_to_the_ones_in_use_and_the_ten_newest() {
    let acct = Account::start();
    acct.moto.bootstrap();
    let repo = example_repo();
    let dir = repo.path().display().to_string();
    // Each apply of a changed template registers and deploys a revision: 30 of them.
    let text = std::fs::read_to_string(repo.path().join("services/taskdefs/web.json")).unwrap();
    let sdk = acct.moto.sdk().await;
    let ecs = aws_sdk_ecs::Client::new(&sdk);
    for i in 0..30 {
        let t = text.replacen("\"image\"", &format!("\"dockerLabels\": {{\"build\": \"{i}\"}}, \"image\""), 1);
        std::fs::write(repo.path().join("services/taskdefs/web.json"), t).unwrap();
        acct.sw(&["apply", "-m", &dir]).assert_code(0);
    }
    let active = || async {
        let shorts = active_revisions(&sdk, "web").await;
        shorts.iter().map(|a| a.rsplit(':').next().unwrap().parse::<u32>().unwrap()).collect::<Vec<_>>()
    };
    assert_eq!(active().await.len(), 31, "the bootstrap's and 30 of ours");
    let plan = acct.sw(&["plan", "-m", &dir, "--max-prune", "100"]);
    assert!(
        plan.stdout.contains("- task definition web:2: deregister: no deployment uses it, older than the 10 kept"),
        "{}",
        plan.stdout
    );
    let run = acct.sw(&["apply", "-m", &dir, "--prune", "--max-prune", "100"]);
    run.assert_code(0);
    let left = active().await;
    let running = ecs.describe_services().cluster("prod").services("web").send().await.unwrap();
    let running: u32 = running.services()[0].task_definition().unwrap().rsplit(':').next().unwrap().parse().unwrap();
    assert_eq!(running, 31);
    // web:1 is the bootstrap's (not ours); 31 runs; 21..=30 are the ten newest older ones.
    let mut want: Vec<u32> = vec![1];
    want.extend(21..=31);
    assert_eq!(left, want, "{}", run.stdout);
}

impl Account {
    /// Where the product is pointed: the shaped proxy in AWS-shape mode, else moto.
    fn endpoint(&self) -> &str {
        self.proxy.as_ref().map_or(self.moto.url.as_str(), |p| p.url.as_str())
    }

    /// `apply` through `proxy`.
    fn apply_through(&self, proxy: &FaultProxy, args: &[&str]) -> Run {
        let mut cmd = self.moto.command();
        cmd.env("AWS_ENDPOINT_URL", &proxy.url).args(["apply"]).args(args);
        for (k, v) in demo_env() {
            cmd.env(k, v);
        }
        Run::from(cmd.output().unwrap())
    }
}

/// What prune leaves: the deleted parameter gone, the secret scheduled once,
/// the retained values let go of, everything declared intact.
async fn assert_pruned(sdk: &aws_config::SdkConfig) {
    assert!(!parameter_exists(sdk, "/extra/deleted").await);
    let days = deletion_in_days(sdk, "extra/deleted").await.expect("scheduled for deletion");
    assert!((6.9..7.1).contains(&days), "{days}");
    assert!(!ours(&parameter_tags(sdk, "/extra/kept").await) && !ours(&secret_tags(sdk, "extra/kept").await));
    assert!(parameter_exists(sdk, "/web/database-password").await);
    assert!(ours(&parameter_tags(sdk, "/web/database-password").await));
    for declared in ["web/api", "web/splunk-token", "registry/dockerhub"] {
        assert!(
            deletion_in_days(sdk, declared).await.is_none() && ours(&secret_tags(sdk, declared).await),
            "{declared}"
        );
    }
    for role in ["web-execution", "web-task"] {
        assert!(role_exists(sdk, role).await, "{role}");
    }
}

/// The worker's pipeline deploys a revision of its own, without secretwire's execution role.
async fn worker_deploys_its_own_revision(sdk: &aws_config::SdkConfig) {
    let ecs = aws_sdk_ecs::Client::new(sdk);
    let container = aws_sdk_ecs::types::ContainerDefinition::builder()
        .name("worker")
        .image("registry.example.com/acme/worker:1.5.0")
        .memory(512)
        .build();
    let own = ecs.register_task_definition().family("worker").container_definitions(container).send().await.unwrap();
    let own = own.task_definition().unwrap().task_definition_arn().unwrap().to_string();
    ecs.update_service()
        .cluster("prod")
        .service("worker")
        .task_definition(&own)
        .force_new_deployment(true)
        .send()
        .await
        .unwrap();
}

async fn active_revisions(sdk: &aws_config::SdkConfig, family: &str) -> Vec<String> {
    let out = aws_sdk_ecs::Client::new(sdk).list_task_definitions().family_prefix(family).send().await.unwrap();
    out.task_definition_arns().iter().map(|a| a.rsplit('/').next().unwrap().to_string()).collect()
}

#[tokio::test]
async fn prune_under_throttling_lost_answers_and_kill_9_converges_and_deletes_nothing_twice() {
    const PRUNE_WRITES: &[&str] = &[
        "DeleteParameter",
        "DeleteSecret",
        "RemoveTagsFromResource",
        "UntagResource",
        "DeleteRolePolicy",
        "DeleteRole",
        "DeregisterTaskDefinition",
    ];
    let acct = Account::start();
    let repo = applied_with_extra(&acct).await;
    let dir = repo.path().display().to_string();
    let sdk = acct.moto.sdk().await;
    // The extras and the worker leave the repo; the worker no longer runs its role.
    std::fs::remove_file(repo.path().join("extra.yaml")).unwrap();
    std::fs::remove_file(repo.path().join("services/worker.yaml")).unwrap();
    worker_deploys_its_own_revision(&sdk).await;
    acct.plan_until(&dir, "- secret extra/kept");

    // Killed at moments spread over a pruning apply (seeded), then run again.
    let mut rng = 0x9E37_79B9u64;
    let mut deletes = 0;
    let deleted = |p: &FaultProxy| {
        p.calls()
            .iter()
            .filter(|c| ["DeleteSecret", "DeleteParameter", "DeleteRole"].contains(&c.operation.as_str()) && c.applied)
            .count()
    };
    for trial in 0..3 {
        let slow = FaultProxy::start(
            acct.endpoint(),
            crate::faultproxy::Faults { latency: 1.0, latency_by: Duration::from_millis(40), ..Default::default() },
            trial,
        );
        let mut cmd = acct.moto.command();
        cmd.env("AWS_ENDPOINT_URL", &slow.url).args(["apply", "-m", &dir, "--prune", "--max-prune", "6"]);
        let mut child = cmd.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
        rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        // Not synchronisation: the kill moment is the input of the trial.
        std::thread::sleep(Duration::from_millis(200 + (rng >> 33) % 1500));
        child.kill().unwrap();
        child.wait().unwrap();
        deletes += deleted(&slow);
    }
    // Then under 25% throttling, 5xx, resets and lost answers (each prune write's first answer lost).
    let faulty = FaultProxy::start(acct.endpoint(), crate::faults::harsh(PRUNE_WRITES), 0x9A0E);
    let run = acct.apply_through(&faulty, &["-m", &dir, "--prune", "--max-prune", "6"]);
    run.assert_code(0);
    assert_pruned(&sdk).await;
    assert!(!role_exists(&sdk, "worker-execution").await);
    assert_eq!(
        active_revisions(&sdk, "worker").await,
        ["worker:1", "worker:3"],
        "only ours, unused, deregistered {} {}",
        run.stdout,
        run.stderr
    );
    deletes += deleted(&faulty);
    assert_policy_covers(&acct, &dir, &faulty);
    // A kill can cut a delete's answer off at the proxy too, so a delete that
    // took effect is not always counted: at most once each, never twice.
    assert!(deletes <= 3, "a delete took effect twice: {deletes}");
    for op in ["DeleteParameter", "DeleteSecret", "DeleteRole"] {
        let sent = faulty.calls().iter().filter(|c| c.operation == op).count();
        assert!(sent != 1, "{op}: its first answer is lost, so it is sent again and found done");
    }
    let again = acct.sw(&["apply", "-m", &dir, "--prune", "--max-prune", "6", "--output", "json"]);
    assert_eq!(again.json()["awsWriteCount"], 0, "converged: {}", again.stdout);
}

#[tokio::test]
async fn run_prunes_what_leaves_the_repo_and_refuses_while_the_manifests_have_errors() {
    let acct = Account::start();
    let repo = applied_with_extra(&acct).await;
    let sdk = acct.moto.sdk().await;
    let mut cmd = acct.moto.command();
    cmd.env("AWS_ENDPOINT_URL", acct.endpoint());
    let run =
        start_run_with(cmd, repo.path(), &["--no-events", "--prune", "--max-prune", "10", "--resync-interval", "1s"]);
    run.wait_ready();

    // A file that no longer parses, and a Delete parameter removed at the same time: nothing is pruned.
    let one = "apiVersion: secretwire.dev/v1alpha1\nkind: Parameter\nmetadata: { name: /extra/deleted }\nspec:\n  deletionPolicy: Delete\n  initialValue: { generate: { length: 16 } }\n";
    std::fs::write(repo.path().join("extra.yaml"), EXTRA.replace(one, "")).unwrap();
    std::fs::write(repo.path().join("broken.yaml"), "apiVersion: [unclosed\n").unwrap();
    eventually!("the refusal on /status", 30, run, {
        run.status()["prune"]["refused"].as_str().is_some_and(|r| r.contains("error(s)"))
    });
    let st = run.status();
    assert_eq!(st["prune"]["enabled"], true);
    assert!(
        st["prune"]["objects"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o == "Parameter//extra/deleted: ssm parameter /extra/deleted: delete"),
        "{st:#}"
    );
    assert!(run.log().contains("Prune refused"), "logged");
    run.wait_passes(1);
    assert!(parameter_exists(&sdk, "/extra/deleted").await, "nothing pruned while the manifests have errors");

    std::fs::remove_file(repo.path().join("broken.yaml")).unwrap();
    eventually!("the prune", 30, run, !parameter_exists(&sdk, "/extra/deleted").await);
    eventually!("a quiet status", 30, run, run.status()["prune"].is_null());
    assert!(ours(&secret_tags(&sdk, "extra/deleted").await), "what is still declared stays");
    assert_eq!(run.stop().0, 0);
}

/// Every call `proxy` saw is an action `policy --prune` allows for `dir`.
fn assert_policy_covers(acct: &Account, dir: &str, proxy: &FaultProxy) {
    let policy = acct.sw(&["policy", "-m", dir, "--prune"]);
    policy.assert_code(0);
    let (allowed, sent) = (policy_actions(&policy.json()), sent_actions(proxy));
    let missing: Vec<&String> = sent.difference(&allowed).collect();
    assert!(missing.is_empty(), "`secretwire policy --prune` does not allow: {missing:?}");
}

/// The sum of a `/metrics` counter over the samples whose labels contain `labels`.
fn counter(run: &Running, name: &str, labels: &str) -> f64 {
    let body = run.get("/metrics").1;
    body.lines()
        .filter(|l| l.starts_with(name) && l.contains(labels))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum()
}

#[tokio::test]
async fn run_deregisters_an_old_revision_once_and_then_leaves_the_family_alone() {
    let acct = Account::start();
    acct.moto.bootstrap();
    let repo = example_repo();
    let dir = repo.path().display().to_string();
    let web = repo.path().join("services/web.yaml");
    let text = std::fs::read_to_string(&web)
        .unwrap()
        .replace("  cluster: prod\n", "  cluster: prod\n  revisionHistoryLimit: 0\n");
    std::fs::write(&web, text).unwrap();
    acct.sw(&["apply", "-m", &dir]).assert_code(0);
    let template = repo.path().join("services/taskdefs/web.json");
    let t = std::fs::read_to_string(&template).unwrap().replacen(
        "\"image\"",
        "\"dockerLabels\": {\"build\": \"2\"}, \"image\"",
        1,
    );
    std::fs::write(&template, t).unwrap();
    acct.sw(&["apply", "-m", &dir]).assert_code(0);
    let sdk = acct.moto.sdk().await;
    assert_eq!(active_revisions(&sdk, "web").await, ["web:1", "web:2", "web:3"]);

    let mut cmd = acct.moto.command();
    cmd.env("AWS_ENDPOINT_URL", acct.endpoint());
    let run =
        start_run_with(cmd, repo.path(), &["--no-events", "--prune", "--max-prune", "10", "--resync-interval", "1s"]);
    run.wait_ready();
    eventually!("web:2 deregistered", 30, run, active_revisions(&sdk, "web").await == ["web:1", "web:3"]);
    run.wait_passes(3);
    assert_eq!(counter(&run, "secretwire_aws_calls_total", "operation=\"DeregisterTaskDefinition\""), 1.0, "once");
    let listed = counter(&run, "secretwire_aws_calls_total", "operation=\"ListTaskDefinitions\"");
    assert_eq!(
        listed, 2.0,
        "listed at the first pass and again after the deregistration, then not while nothing moves"
    );
    assert_eq!(run.stop().0, 0);
}
