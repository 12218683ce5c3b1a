//! Prune planning on pure data: the example applied, then objects that no
//! manifest declares any more added to what AWS holds.

use std::sync::Arc;

use serde_json::json;

use super::prune::plan_prune;
use super::tests::{MANIFESTS, applied_example, desired};
use super::*;

const ID: &str = "default";

fn owned(name: &str, kind: &str, policy: &str) -> Tags {
    Tags::from([
        (TAG_MANAGED_BY.to_string(), ID.to_string()),
        (TAG_SOURCE.to_string(), format!("{kind}/{name}")),
        (TAG_DELETION_POLICY.to_string(), policy.to_string()),
        ("team".to_string(), "storefront".to_string()),
    ])
}

fn parameter(name: &str, policy: &str) -> ObservedParameter {
    ObservedParameter {
        name: name.into(),
        kind: "SecureString".into(),
        key_id: None,
        description: None,
        tags: owned(name, "Parameter", policy),
        last_modified: None,
    }
}

fn secret(name: &str, tags: Tags) -> ObservedSecret {
    ObservedSecret {
        name: name.into(),
        arn: format!("arn:aws:secretsmanager:us-east-1:123456789012:secret:{name}-AbCdEf"),
        kms_key_id: None,
        description: None,
        tags,
        last_changed: None,
        rotation: Default::default(),
        deleted: false,
    }
}

fn role(name: &str, service: Option<&str>, policy: &str) -> Arc<ObservedRole> {
    let mut tags = owned("old", "Service", policy);
    if let Some(s) = service {
        tags.insert(TAG_SERVICE.into(), s.into());
    }
    Arc::new(ObservedRole {
        name: name.into(),
        arn: format!("arn:aws:iam::123456789012:role/{name}"),
        trust: (&json!({})).into(),
        inline_policy: Some((&json!({"Statement": []})).into()),
        managed_policy_arns: ["arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy".to_string()]
            .into(),
        tags,
        permissions_boundary: None,
    })
}

fn ops(p: &prune::Prune) -> Vec<&Op> {
    p.objects.iter().flat_map(|o| &o.changes).flat_map(|c| &c.ops).collect()
}

fn details(p: &prune::Prune) -> Vec<String> {
    p.objects
        .iter()
        .flat_map(|o| o.changes.iter().map(move |c| format!("{} {}: {}", o.key, c.resource, c.detail)))
        .collect()
}

#[test]
fn values_no_manifest_declares_are_deleted_or_let_go_of_as_their_tag_says_and_wait_while_referenced() {
    let (d, mut o) = applied_example();
    o.undeclared.parameters = vec![parameter("/old/delete", "Delete"), parameter("/old/retain", "Retain")];
    let mut window = owned("old/secret", "Secret", "Delete");
    window.insert(TAG_RECOVERY_WINDOW.into(), "7".into());
    // `/web/db` is declared; one that is not but is still referenced by a declared service waits.
    o.undeclared.secrets = vec![secret("old/secret", window), secret("web/api", owned("web/api", "Secret", "Delete"))];
    let mut d = d;
    d.secrets.remove("web/api");
    let p = plan_prune(&d, &o, ID, Some(10));
    let shown = details(&p);
    assert!(shown.contains(&"Parameter//old/delete ssm parameter /old/delete: delete".to_string()), "{shown:#?}");
    assert!(
        shown.iter().any(|l| l.starts_with("Parameter//old/retain") && l.contains("needs adopt: true")),
        "{shown:#?}"
    );
    assert!(shown.iter().any(|l| l.contains("secret old/secret: delete, recoverable for 7 days")), "{shown:#?}");
    assert!(shown.iter().any(|l| l.contains("secret web/api: waits: still referenced by Service/web")), "{shown:#?}");
    let ops = ops(&p);
    assert!(ops.iter().any(|o| matches!(o, Op::DeleteParameter { name } if name == "/old/delete")));
    assert!(ops.iter().any(
        |o| matches!(o, Op::UntagParameter { name, keys } if name == "/old/retain" && keys.len() == 3 && !keys.contains(&"team".to_string()))
    ), "only secretwire.dev/* tags are removed: {ops:?}");
    assert!(ops.iter().any(|o| matches!(o, Op::DeleteSecret { recovery_window_days: 7, .. })));
    assert_eq!(p.guard.prunable, 3, "the waiting one is not counted");
    assert!(p.allowed());
}

#[test]
fn the_guard_refuses_an_empty_or_broken_checkout_and_more_than_max_prune() {
    let (d, mut o) = applied_example();
    o.undeclared.parameters = (0..3).map(|i| parameter(&format!("/old/{i}"), "Delete")).collect();
    // Owned: 2 parameters and secrets declared... the example owns 1 + 1 + 2 roles, plus the 3.
    let p = plan_prune(&d, &o, ID, None);
    assert_eq!((p.guard.owned, p.guard.max), (7, 1));
    assert!(
        !p.allowed()
            && p.guard
                .refused
                .as_ref()
                .unwrap()
                .contains("3 objects would be pruned, more than --max-prune 1 (25% of the 7 owned")
    );
    assert!(plan_prune(&d, &o, ID, Some(3)).allowed(), "--max-prune raises the limit");

    let empty = Desired::default();
    let p = plan_prune(&empty, &o, ID, Some(100));
    assert!(p.guard.refused.as_ref().unwrap().contains("declare nothing"), "{:?}", p.guard);
    let mut broken = d.clone();
    broken.load_errors = 2;
    let p = plan_prune(&broken, &o, ID, Some(100));
    assert!(p.guard.refused.as_ref().unwrap().contains("2 error(s)"), "{:?}", p.guard);
    assert!(!p.objects.is_empty(), "still shown");
}

#[test]
fn a_removed_services_roles_wait_while_a_deployment_runs_a_revision_naming_them() {
    let (d, mut o) = applied_example();
    o.undeclared.roles = vec![
        role("old-execution", Some("prod/old"), "Delete"),
        role("older-execution", None, "Delete"),
        role("kept-execution", Some("prod/gone"), "Retain"),
    ];
    let old = |rev: u32, role: &str| {
        json!({"taskDefinitionArn": format!("arn:aws:ecs:us-east-1:123456789012:task-definition/old:{rev}"), "family": "old",
               "revision": rev, "executionRoleArn": format!("arn:aws:iam::123456789012:role/{role}"), "containerDefinitions": []})
    };
    let running = "arn:aws:ecs:us-east-1:123456789012:task-definition/old:3";
    o.revisions.insert(running.into(), Arc::new((&old(3, "old-execution")).into()));
    o.undeclared.services.insert(
        ("prod".into(), "old".into()),
        ObservedService {
            arn: "arn:aws:ecs:us-east-1:123456789012:service/prod/old".into(),
            status: "ACTIVE".into(),
            task_definition: running.into(),
            deployment_controller: "ECS".into(),
            deployments: vec![Deployment {
                id: "d".into(),
                status: "PRIMARY".into(),
                task_definition: running.into(),
                ..Default::default()
            }],
            applied: None,
            rollout: None,
            events: vec![],
        },
    );
    let p = plan_prune(&d, &o, ID, Some(10));
    let shown = details(&p);
    assert!(
        shown.contains(
            &"Service/old iam role old-execution: waits: ECS service prod/old still runs old:3, which names it"
                .to_string()
        ),
        "{shown:#?}"
    );
    assert!(shown.iter().any(|l| l.contains("older-execution: waits: no secretwire.dev/service tag")), "{shown:#?}");
    assert!(ops(&p).iter().any(|o| matches!(o, Op::UntagRole { name, .. } if name == "kept-execution")));

    // A new deployment elsewhere: the revision no longer names the role.
    o.revisions.insert(running.into(), Arc::new((&old(3, "other-execution")).into()));
    let p = plan_prune(&d, &o, ID, Some(10));
    assert!(ops(&p).iter().any(|op| matches!(op, Op::DeleteRole { name, inline: true, managed } if name == "old-execution" && managed.len() == 1)), "{:#?}", details(&p));
    // The ECS service gone: nothing runs it either.
    o.undeclared.services.clear();
    assert!(
        ops(&plan_prune(&d, &o, ID, Some(10)))
            .iter()
            .any(|op| matches!(op, Op::DeleteRole { name, .. } if name == "old-execution"))
    );
}

#[test]
fn revisions_beyond_the_history_limit_are_deregistered_keeping_those_in_use_and_others_untouched() {
    let (d, mut o) = applied_example();
    let arn = |n: u32| format!("arn:aws:ecs:us-east-1:123456789012:task-definition/web:{n}");
    // What the revisions' tags say: all but web:5 registered by this controller.
    for n in (1..=30).filter(|n| *n != 5) {
        let reg = RegisteredRevision { policy: DeletionPolicy::Delete, source: Some("Service/web".into()) };
        o.undeclared.registered.insert(arn(n), reg);
    }
    o.undeclared.families.insert("web".into(), (1..=30).map(arn).collect());
    let svc = o.services.get_mut(&("prod".into(), "web".into())).unwrap();
    svc.task_definition = arn(30);
    svc.deployments = vec![
        Deployment { id: "a".into(), status: "PRIMARY".into(), task_definition: arn(30), ..Default::default() },
        Deployment { id: "b".into(), status: "ACTIVE".into(), task_definition: arn(3), ..Default::default() },
    ];
    let p = plan_prune(&d, &o, ID, Some(100));
    let gone: Vec<u64> = ops(&p)
        .iter()
        .filter_map(|op| match op {
            Op::DeregisterTaskDefinition { arn } => super::prune::revision_number(arn),
            _ => None,
        })
        .collect();
    // In use: 30 and 3. The newest 10 of the rest (20..=29) kept. 5 is not ours.
    let want: Vec<u64> = (1..=19).filter(|n| ![3, 5].contains(n)).collect();
    assert_eq!(gone, want);
    assert_eq!(p.guard.prunable, want.len());

    let mut limit = desired(&MANIFESTS.replace("  cluster: prod\n", "  cluster: prod\n  revisionHistoryLimit: 0\n"));
    assert_eq!(ops(&plan_prune(&limit, &o, ID, Some(100))).len(), 27, "all but the two in use and the foreign one");
    limit.services.get_mut("web").unwrap().deletion_policy = DeletionPolicy::Retain;
    assert!(ops(&plan_prune(&limit, &o, ID, Some(100))).is_empty(), "Retain keeps every revision");
}
