//! Rollout tests on pure data: DescribeServices answers as AWS documents
//! them (and as public projects record them), the tracker's schedule, slots
//! and waves, and the diagnosis of each failure of the troubleshooting list.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::diagnose::{Known, explain, first_reason};
use super::judge::{Sighting, judge};
use super::tracker::{Effect, Tracker, Waiting};
use super::*;
use crate::arn::Scope;
use crate::events::{DeploymentEvent, DeploymentState};
use crate::model::Desired;
use crate::observed::{
    Deployment, KmsKey, Observed, ObservedParameter, ObservedRole, ObservedSecret, ObservedService, StoppedTask,
};

fn deployment(id: &str, status: &str, state: &str, reason: &str) -> Deployment {
    Deployment {
        id: id.into(),
        status: status.into(),
        rollout_state: Some(state.into()),
        rollout_state_reason: Some(reason.into()),
        desired_count: 2,
        running_count: if state == "COMPLETED" { 2 } else { 0 },
        failed_tasks: if state == "FAILED" { 3 } else { 0 },
        created_at: Some(1000.0),
        ..Deployment::default()
    }
}

fn service(deployments: Vec<Deployment>) -> ObservedService {
    ObservedService {
        arn: "arn:aws:ecs:us-east-1:123456789012:service/prod/web".into(),
        status: "ACTIVE".into(),
        task_definition: "web:2".into(),
        deployment_controller: "ECS".into(),
        deployments,
        applied: None,
        rollout: None,
        events: vec![],
    }
}

const ROLLING_BACK: &str = "ECS deployment circuit breaker: rolling back to deploymentId ecs-svc/1111111111111111111.";
const FAILED: &str = "ECS deployment circuit breaker: tasks failed to start.";

#[test]
fn judge_reads_each_rollout_state_as_describe_services_reports_it() {
    let done = service(vec![deployment("ecs-svc/2", "PRIMARY", "COMPLETED", "ECS deployment ecs-svc/2 completed.")]);
    assert!(matches!(judge("ecs-svc/2", Some(&done)), Sighting::Ended { outcome: Outcome::Completed, .. }));
    let going = service(vec![
        deployment("ecs-svc/2", "PRIMARY", "IN_PROGRESS", "ECS deployment ecs-svc/2 in progress."),
        deployment("ecs-svc/1", "ACTIVE", "COMPLETED", "ECS deployment ecs-svc/1 completed."),
    ]);
    assert_eq!(
        judge("ecs-svc/2", Some(&going)),
        Sighting::InProgress(Progress { running: 0, desired: 2, pending: 0, failed: 0 })
    );
    let failed = service(vec![deployment("ecs-svc/2", "PRIMARY", "FAILED", FAILED)]);
    assert_eq!(
        judge("ecs-svc/2", Some(&failed)),
        Sighting::Ended {
            outcome: Outcome::Failed,
            reason: FAILED.into(),
            progress: Progress { running: 0, desired: 2, pending: 0, failed: 3 }
        }
    );
}

#[test]
fn a_circuit_breaker_rollback_is_told_from_a_failure_while_it_runs_and_after_it_is_done() {
    // During the rollback: ours ACTIVE and FAILED, the rollback PRIMARY (public
    // records of ECS answers, e.g. the ones quoted in the ecs-deploy test suite).
    let during = service(vec![
        deployment("ecs-svc/3", "PRIMARY", "IN_PROGRESS", ROLLING_BACK),
        deployment("ecs-svc/2", "ACTIVE", "FAILED", FAILED),
    ]);
    assert!(matches!(judge("ecs-svc/2", Some(&during)), Sighting::Ended { outcome: Outcome::RolledBack, .. }));
    // Ours still IN_PROGRESS beside the rollback (the moment the breaker trips).
    let tripping = service(vec![
        deployment("ecs-svc/3", "PRIMARY", "IN_PROGRESS", ROLLING_BACK),
        deployment("ecs-svc/2", "ACTIVE", "IN_PROGRESS", "ECS deployment ecs-svc/2 in progress."),
    ]);
    assert!(matches!(judge("ecs-svc/2", Some(&tripping)), Sighting::Ended { outcome: Outcome::RolledBack, .. }));
    // After: ours is gone, the rollback is PRIMARY.
    let after = service(vec![deployment("ecs-svc/3", "PRIMARY", "COMPLETED", ROLLING_BACK)]);
    assert!(matches!(judge("ecs-svc/2", Some(&after)), Sighting::Ended { outcome: Outcome::RolledBack, .. }));
    // Gone, replaced by someone's deployment: superseded, not a failure.
    let replaced =
        service(vec![deployment("ecs-svc/9", "PRIMARY", "IN_PROGRESS", "ECS deployment ecs-svc/9 in progress.")]);
    assert!(matches!(judge("ecs-svc/2", Some(&replaced)), Sighting::Ended { outcome: Outcome::Superseded, .. }));
    assert!(matches!(judge("ecs-svc/2", None), Sighting::Ended { outcome: Outcome::Failed, .. }));
}

#[test]
fn without_a_rollout_state_steady_means_one_deployment_with_every_task_running() {
    let mut d = deployment("ecs-svc/2", "PRIMARY", "COMPLETED", "");
    d.rollout_state = None;
    assert!(matches!(
        judge("ecs-svc/2", Some(&service(vec![d.clone()]))),
        Sighting::Ended { outcome: Outcome::Completed, .. }
    ));
    d.running_count = 1;
    assert!(matches!(judge("ecs-svc/2", Some(&service(vec![d]))), Sighting::InProgress(_)));
}

fn started(service: &str, id: &str, wave: Option<&str>) -> Started {
    Started {
        service: service.into(),
        cluster: "prod".into(),
        service_name: service.into(),
        deployment_id: id.into(),
        trigger: Trigger::Rotation,
        detail: "secret prod/db (RotationSucceeded)".into(),
        at: 100.0,
        wave: wave.map(str::to_string),
    }
}

fn wanted(service: &str, wave: &str) -> Waiting {
    Waiting {
        service: service.into(),
        trigger: Trigger::Rotation,
        detail: "secret prod/db".into(),
        before: None,
        wave: Some(wave.into()),
        since: 100.0,
        held: None,
        failed: None,
    }
}

fn ended(effects: &[Effect]) -> Vec<(String, Outcome)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Ended(e) => Some((e.started.service.clone(), e.outcome)),
            _ => None,
        })
        .collect()
}

fn starts(effects: &[Effect]) -> Vec<String> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Start(w) => Some(w.service.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn with_no_rollout_open_the_tracker_never_wakes_and_reads_are_spaced_out_then_batched() {
    let t0 = Instant::now();
    let mut t = Tracker::new(Duration::from_secs(1800), 10);
    assert_eq!(t.next_wake(), None, "nothing open: zero extra calls");
    assert!(t.due(t0 + Duration::from_secs(3600)).is_empty());
    t.open(started("a", "d1", None), t0, 100.0);
    t.open(started("b", "d2", None), t0 + Duration::from_secs(3), 103.0);
    assert_eq!(t.next_wake(), Some(t0 + Duration::from_secs(5)));
    assert!(t.due(t0 + Duration::from_secs(4)).is_empty());
    // At 5 s a is due and b (due at 8 s) comes along in the same batch.
    let due: Vec<String> = t.due(t0 + Duration::from_secs(5)).into_iter().map(|s| s.service).collect();
    assert_eq!(due, ["a", "b"]);
    // Then 10 s later, 20, 40, and at most a minute apart.
    assert_eq!(t.next_wake(), Some(t0 + Duration::from_secs(15)));
    let mut at = t0 + Duration::from_secs(15);
    let mut gaps = Vec::new();
    for _ in 0..5 {
        t.due(at);
        let next = t.next_wake().unwrap();
        gaps.push((next - at).as_secs());
        at = next;
    }
    assert_eq!(gaps, [20, 40, 60, 60, 60]);
}

#[test]
fn rollouts_end_by_event_by_read_or_by_timeout() {
    let t0 = Instant::now();
    let mut t = Tracker::new(Duration::from_secs(60), 10);
    t.open(started("a", "d1", None), t0, 100.0);
    t.open(started("b", "d2", None), t0, 100.0);
    t.open(started("c", "d3", None), t0, 100.0);
    let ev = |id: &str, state, reason: &str| DeploymentEvent {
        service_arn: "arn:aws:ecs:us-east-1:123456789012:service/prod/b".into(),
        deployment_id: id.into(),
        state,
        reason: reason.into(),
        at: Some(130.0),
    };
    // COMPLETED ends it at once, without a read.
    let e = t.event(&ev("d1", DeploymentState::Completed, "ECS deployment d1 completed."), t0, 130.0);
    assert_eq!(ended(&e), [("a".to_string(), Outcome::Completed)]);
    // FAILED makes it due now: the read tells failed from rolled back.
    let e = t.event(&ev("d2", DeploymentState::Failed, FAILED), t0 + Duration::from_secs(1), 131.0);
    assert!(e.is_empty());
    assert_eq!(t.next_wake(), Some(t0 + Duration::from_secs(1)));
    let due: Vec<String> = t.due(t0 + Duration::from_secs(1)).into_iter().map(|s| s.deployment_id).collect();
    assert!(due.contains(&"d2".to_string()));
    let failed = service(vec![deployment("d2", "PRIMARY", "FAILED", FAILED)]);
    let e = t.sighted("b", "d2", judge("d2", Some(&failed)), 132.0);
    assert_eq!(ended(&e), [("b".to_string(), Outcome::Failed)]);
    // Another deployment's events are not ours.
    assert!(t.event(&ev("d9", DeploymentState::Completed, ""), t0, 133.0).is_empty());
    // c never ends: timed out at the deadline.
    assert!(t.expire(t0 + Duration::from_secs(59), 159.0).is_empty());
    let e = t.expire(t0 + Duration::from_secs(60), 160.0);
    assert_eq!(ended(&e), [("c".to_string(), Outcome::TimedOut)]);
    assert_eq!(t.in_progress(), 0);
    assert_eq!(t.next_wake(), None);
}

#[test]
fn a_rollback_event_makes_the_open_rollout_of_that_service_due_now() {
    let t0 = Instant::now();
    let mut t = Tracker::new(Duration::from_secs(1800), 10);
    t.open(started("web", "ecs-svc/2", None), t0, 100.0);
    t.open(started("worker", "ecs-svc/7", None), t0, 100.0);
    let rollback = DeploymentEvent {
        service_arn: "arn:aws:ecs:us-east-1:123456789012:service/prod/web".into(),
        deployment_id: "ecs-svc/3".into(),
        state: DeploymentState::InProgress,
        reason: ROLLING_BACK.into(),
        at: None,
    };
    let now = t0 + Duration::from_secs(2);
    t.event(&rollback, now, 102.0);
    assert_eq!(t.next_wake(), Some(now));
    // worker's first read is at 5 s; 2 s + 5 s of coalescing takes it along.
    let due: Vec<String> = t.due(now).into_iter().map(|s| s.service).collect();
    assert_eq!(due, ["web", "worker"]);
}

#[test]
fn at_most_max_parallel_run_at_once_and_the_rest_start_in_order_as_slots_free() {
    let t0 = Instant::now();
    let mut t = Tracker::new(Duration::from_secs(1800), 2);
    for (i, s) in ["a", "b", "c", "d"].iter().enumerate() {
        match t.admit(wanted(s, "w1")) {
            Some(w) => {
                t.open(started(&w.service, &format!("d{i}"), Some("w1")), t0, 100.0);
            }
            None => assert!(i >= 2, "{s} waits only when both slots are taken"),
        }
    }
    assert_eq!(t.in_progress(), 2);
    assert!(t.holds("c") && t.holds("d") && !t.holds("a"));
    // a completes: c starts (in order), d still waits.
    let done = service(vec![deployment("d0", "PRIMARY", "COMPLETED", "")]);
    let e = t.sighted("a", "d0", judge("d0", Some(&done)), 200.0);
    assert_eq!(starts(&e), ["c"]);
    assert!(t.holds("d"));
}

#[test]
fn a_wave_whose_first_rollout_fails_holds_the_rest_until_a_new_change_arrives() {
    let t0 = Instant::now();
    let mut t = Tracker::new(Duration::from_secs(1800), 1);
    let first = t.admit(wanted("a", "db@1")).unwrap();
    t.open(started(&first.service, "d1", Some("db@1")), t0, 100.0);
    assert!(t.admit(wanted("b", "db@1")).is_none());
    assert!(t.admit(wanted("c", "db@1")).is_none());
    assert!(t.admit(wanted("x", "other@1")).is_none());
    let failed = service(vec![deployment("d1", "PRIMARY", "FAILED", FAILED)]);
    let e = t.sighted("a", "d1", judge("d1", Some(&failed)), 200.0);
    let held: Vec<String> = e
        .iter()
        .filter_map(|e| match e {
            Effect::Held(w) => Some(w.service.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(held, ["b", "c"], "the rest of the wave is held");
    assert_eq!(starts(&e), ["x"], "another value's wave goes on");
    assert!(t.holds("b") && t.holds("c"), "held, the stale backstop leaves them alone");
    // A new change for b releases it: a new wave, admitted (the slot frees first).
    t.open(started("x", "d2", Some("other@1")), t0, 200.0);
    let done = service(vec![deployment("d2", "PRIMARY", "COMPLETED", "")]);
    let e = t.sighted("x", "d2", judge("d2", Some(&done)), 300.0);
    assert!(starts(&e).is_empty(), "held ones do not start when a slot frees");
    assert_eq!(t.admit(wanted("b", "db@2")).map(|w| w.service), Some("b".to_string()));
    assert!(!t.holds("b") && t.holds("c"));
    // A manual deployment (or a manifest change) releases c.
    assert!(t.release("c").is_some());
    assert!(!t.holds("c"));
}

#[test]
fn a_wave_whose_first_rollout_completed_is_not_stopped_by_a_later_failure() {
    let t0 = Instant::now();
    let mut t = Tracker::new(Duration::from_secs(1800), 2);
    for (s, id) in [("a", "d1"), ("b", "d2")] {
        let w = t.admit(wanted(s, "db@1")).unwrap();
        t.open(started(&w.service, id, Some("db@1")), t0, 100.0);
    }
    assert!(t.admit(wanted("c", "db@1")).is_none());
    let done = service(vec![deployment("d1", "PRIMARY", "COMPLETED", "")]);
    let e = t.sighted("a", "d1", judge("d1", Some(&done)), 200.0);
    assert_eq!(starts(&e), ["c"]);
    let failed = service(vec![deployment("d2", "PRIMARY", "FAILED", FAILED)]);
    let e = t.sighted("b", "d2", judge("d2", Some(&failed)), 201.0);
    assert!(!e.iter().any(|e| matches!(e, Effect::Held(_))), "b's own failure is reported, nothing is held");
}

#[test]
fn a_new_deployment_of_a_service_supersedes_its_open_rollout() {
    let t0 = Instant::now();
    let mut t = Tracker::new(Duration::from_secs(1800), 10);
    t.open(started("a", "d1", None), t0, 100.0);
    let e = t.open(started("a", "d2", None), t0, 110.0);
    assert_eq!(ended(&e), [("a".to_string(), Outcome::Superseded)]);
    assert_eq!(t.in_progress(), 1);
}

// --- diagnosis ---

const MANIFESTS: &str = "apiVersion: secretwire.dev/v1alpha1
kind: Service
metadata: { name: web }
spec:
  cluster: prod
  executionRole: { roleName: web-execution }
  containers:
    - name: web
      secrets:
        - { name: DATABASE_PASSWORD, parameter: /web/database-password }
        - { name: API_PASSWORD, secret: web/api, jsonKey: password }
      logSecrets:
        - { name: splunk-token, secret: web/splunk-token }
    - name: sidecar
      repositoryCredentials: { secret: registry/dockerhub }
";

fn desired() -> Desired {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("m.yaml"), MANIFESTS).unwrap();
    let (d, diags) = crate::manifest::load_dir(dir.path());
    assert!(diags.is_empty(), "{diags:?}");
    d
}

const KEY: &str = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";

/// The account after apply: the values exist (web/api under a customer managed
/// key), and the role's policy is the one secretwire wrote, less what `drop` names.
fn account(drop: &[&str]) -> Observed {
    let mut o = Observed::new(Scope::new("us-east-1", "123456789012"));
    let secret = |name: &str, suffix: &str, key: Option<&str>| ObservedSecret {
        name: name.into(),
        arn: format!("arn:aws:secretsmanager:us-east-1:123456789012:secret:{name}-{suffix}"),
        kms_key_id: key.map(str::to_string),
        description: None,
        tags: Default::default(),
        last_changed: None,
        rotation: Default::default(),
        deleted: false,
    };
    o.secrets.insert("web/api".into(), secret("web/api", "AbCdEf", Some(KEY)));
    o.secrets.insert("web/splunk-token".into(), secret("web/splunk-token", "GhIjKl", None));
    o.secrets.insert("registry/dockerhub".into(), secret("registry/dockerhub", "MnOpQr", None));
    o.parameters.insert(
        "/web/database-password".into(),
        ObservedParameter {
            name: "/web/database-password".into(),
            kind: "SecureString".into(),
            key_id: Some("alias/aws/ssm".into()),
            description: None,
            tags: Default::default(),
            last_modified: None,
        },
    );
    o.keys.insert(KEY.into(), KmsKey { arn: KEY.into(), customer_managed: true });
    let mut statements = vec![
        json!({"Sid": "ReadParameters", "Effect": "Allow", "Action": "ssm:GetParameters",
               "Resource": ["arn:aws:ssm:us-east-1:123456789012:parameter/web/database-password"]}),
        json!({"Sid": "ReadSecrets", "Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
               "Resource": ["arn:aws:secretsmanager:us-east-1:123456789012:secret:web/api-??????",
                            "arn:aws:secretsmanager:us-east-1:123456789012:secret:web/splunk-token-??????",
                            "arn:aws:secretsmanager:us-east-1:123456789012:secret:registry/dockerhub-??????"]}),
        json!({"Sid": "DecryptValues", "Effect": "Allow", "Action": "kms:Decrypt", "Resource": [KEY]}),
    ];
    statements.retain(|s| !drop.contains(&s["Sid"].as_str().unwrap()));
    let policy = json!({"Version": "2012-10-17", "Statement": statements});
    o.roles.insert(
        "web-execution".into(),
        Arc::new(ObservedRole {
            name: "web-execution".into(),
            arn: "arn:aws:iam::123456789012:role/web-execution".into(),
            trust: (&json!({})).into(),
            inline_policy: Some((&policy).into()),
            managed_policy_arns: Default::default(),
            tags: Default::default(),
            permissions_boundary: None,
        }),
    );
    o
}

/// Whether the diagnosis states exactly `fact`.
fn states(d: &super::diagnose::Diagnosis, fact: &str) -> bool {
    d.facts.iter().any(|f| f == fact)
}

fn diagnose(reason: &str, o: &Observed) -> super::diagnose::Diagnosis {
    let d = desired();
    let k = Known { service: &d.services["web"], observed: Some(o), scope: &o.scope, role_now: None };
    explain(reason, &k)
}

const PREFIX: &str =
    "ResourceInitializationError: unable to pull secrets or registry auth: execution resource retrieval failed: ";

#[test]
fn missing_grant_names_the_reference_and_says_the_role_lacks_the_read() {
    let reason = format!(
        "{PREFIX}unable to retrieve secret from asm: service call has been retried 1 time(s): failed to fetch secret \
         arn:aws:secretsmanager:us-east-1:123456789012:secret:web/api-AbCdEf from secrets manager: operation error \
         Secrets Manager: GetSecretValue, https response error StatusCode: 400, RequestID: d45b80b7, api error \
         AccessDeniedException: User: arn:aws:sts::123456789012:assumed-role/web-execution/3f2a is not authorized to \
         perform: secretsmanager:GetSecretValue on resource: arn:aws:secretsmanager:us-east-1:123456789012:secret:web/api-AbCdEf \
         because no identity-based policy allows the secretsmanager:GetSecretValue action"
    );
    let d = diagnose(&reason, &account(&["ReadSecrets"]));
    assert!(states(&d, "containerDefinitions[web].secrets[API_PASSWORD] reads secret web/api"), "{d:?}");
    assert!(states(&d, "web-execution does not grant secretsmanager:GetSecretValue on it"), "{d:?}");
    assert!(d.cause.as_deref().unwrap().contains("does not grant secretsmanager:GetSecretValue"), "{d:?}");
    assert_eq!(d.ecs_reason, reason);
    // With the grant in place, the denial comes from elsewhere.
    let d = diagnose(&reason, &account(&[]));
    assert!(d.cause.as_deref().unwrap().contains("something denies it"), "{d:?}");
}

#[test]
fn wrong_role_is_named_when_the_task_ran_as_another_role() {
    let reason = format!(
        "{PREFIX}unable to retrieve secret from asm: api error AccessDeniedException: User: \
         arn:aws:sts::123456789012:assumed-role/ecsTaskExecutionRole/8c1e is not authorized to perform: \
         secretsmanager:GetSecretValue on resource: arn:aws:secretsmanager:us-east-1:123456789012:secret:web/splunk-token-GhIjKl"
    );
    let d = diagnose(&reason, &account(&[]));
    assert!(d.cause.as_deref().unwrap().starts_with("wrong role: the task ran as ecsTaskExecutionRole"), "{d:?}");
    assert!(
        d.facts
            .iter()
            .any(|f| f.contains("logConfiguration.secretOptions[splunk-token] reads secret web/splunk-token"))
    );
}

#[test]
fn missing_kms_decrypt_names_the_customer_managed_key_behind_the_secret() {
    let reason = format!(
        "{PREFIX}unable to retrieve secret from asm: service call has been retried 1 time(s): failed to fetch secret \
         arn:aws:secretsmanager:us-east-1:123456789012:secret:web/api-AbCdEf from secrets manager: AccessDeniedException: \
         Access to KMS is not allowed"
    );
    let d = diagnose(&reason, &account(&["DecryptValues"]));
    assert!(states(&d, &format!("it exists, encrypted with customer managed key {KEY}")), "{d:?}");
    assert!(states(&d, &format!("web-execution does not grant kms:Decrypt on {KEY}")), "{d:?}");
    assert_eq!(
        d.cause.as_deref(),
        Some(format!("missing kms:Decrypt: web-execution does not grant it on {KEY}").as_str())
    );
}

#[test]
fn wrong_region_says_where_the_value_lives_and_where_the_service_runs() {
    let reason = format!(
        "{PREFIX}unable to retrieve secrets from ssm: service call has been retried 1 time(s): AccessDeniedException: \
         User: arn:aws:sts::123456789012:assumed-role/web-execution/1 is not authorized to perform: ssm:GetParameters \
         on resource: arn:aws:ssm:eu-west-1:123456789012:parameter/web/database-password"
    );
    let d = diagnose(&reason, &account(&[]));
    assert!(
        states(&d, "containerDefinitions[web].secrets[DATABASE_PASSWORD] reads parameter /web/database-password"),
        "{d:?}"
    );
    assert!(
        d.facts
            .iter()
            .any(|f| f
                .contains("it lives in region eu-west-1; the service runs in account 123456789012 region us-east-1")),
        "{d:?}"
    );
    assert!(d.cause.as_deref().unwrap().starts_with("wrong region"), "{d:?}");
}

#[test]
fn wrong_arn_says_the_value_does_not_exist() {
    let reason = format!(
        "{PREFIX}unable to retrieve secret from asm: service call has been retried 1 time(s): failed to fetch secret \
         arn:aws:secretsmanager:us-east-1:123456789012:secret:registry/dockerhub-MnOpQr from secrets manager: \
         ResourceNotFoundException: Secrets Manager can't find the specified secret."
    );
    let mut o = account(&[]);
    o.secrets.remove("registry/dockerhub");
    let d = diagnose(&reason, &o);
    assert!(states(&d, "containerDefinitions[sidecar].repositoryCredentials reads secret registry/dockerhub"), "{d:?}");
    assert!(d.facts.iter().any(|f| f.starts_with("it does not exist")), "{d:?}");
    assert!(d.cause.as_deref().unwrap().starts_with("wrong ARN"), "{d:?}");
    // SSM names parameters without ARNs.
    let reason = format!(
        "{PREFIX}unable to retrieve secrets from ssm: service call has been retried 1 time(s): invalid parameters: /web/database-password"
    );
    let mut o = account(&[]);
    o.parameters.clear();
    let d = diagnose(&reason, &o);
    assert!(states(&d, "parameter /web/database-password does not exist in region us-east-1"), "{d:?}");
    assert!(d.cause.as_deref().unwrap().starts_with("wrong ARN or region"), "{d:?}");
}

#[test]
fn the_network_a_deleted_secret_and_a_missing_json_key_are_named_too() {
    let net = format!(
        "{PREFIX}unable to retrieve secret from asm: service call has been retried 5 time(s): failed to fetch secret \
         arn:aws:secretsmanager:us-east-1:123456789012:secret:web/api-AbCdEf from secrets manager: RequestCanceled: \
         request context canceled caused by: context deadline exceeded. Please check your task network configuration"
    );
    assert!(diagnose(&net, &account(&[])).cause.unwrap().starts_with("the network"));
    let deleted = format!(
        "{PREFIX}unable to retrieve secret from asm: InvalidRequestException: You can't perform this operation on the secret because it was marked for deletion."
    );
    assert!(diagnose(&deleted, &account(&[])).cause.unwrap().contains("scheduled for deletion"));
    let key = "ResourceInitializationError: unable to retrieve secret from asm: retrieved secret from Secrets Manager did not contain json key password";
    assert!(diagnose(key, &account(&[])).cause.unwrap().contains("no JSON key password"));
}

#[test]
fn the_first_reason_is_the_earliest_stopped_task_s_then_a_service_event() {
    let t = |at: f64, reason: &str, containers: Vec<(String, String)>| StoppedTask {
        arn: format!("arn:aws:ecs:us-east-1:123456789012:task/prod/{at}"),
        stopped_at: Some(at),
        stop_code: Some("TaskFailedToStart".into()),
        stopped_reason: reason.into(),
        containers,
    };
    let tasks = vec![t(5.0, "ResourceInitializationError: first", vec![]), t(9.0, "later", vec![])];
    assert_eq!(first_reason(&tasks, &[], 0.0).as_deref(), Some("ResourceInitializationError: first"));
    let exited = vec![t(
        5.0,
        "Essential container in task exited",
        vec![("web".into(), "CannotPullContainerError: pull access denied".into())],
    )];
    assert_eq!(first_reason(&exited, &[], 0.0).as_deref(), Some("CannotPullContainerError: pull access denied"));
    let events = vec![
        (120.0, "(service web) was unable to place a task because ResourceInitializationError: x".to_string()),
        (50.0, "(service web) failed before this deployment".to_string()),
    ];
    assert!(first_reason(&[], &events, 100.0).unwrap().contains("unable to place"));
    assert_eq!(first_reason(&[], &events[1..], 100.0), None, "events from before the deployment are not its reason");
}
