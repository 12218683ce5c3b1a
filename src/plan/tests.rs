//! Planner tests on pure data: manifests in, a hand-built observed state, and
//! an in-memory simulation of AWS so "plan, apply, plan again" can be checked
//! without a server.

use std::collections::BTreeMap;

use serde_json::json;

use super::*;
use crate::arn::Scope;

pub(super) const MANIFESTS: &str = "apiVersion: secretwire.dev/v1alpha1
kind: Parameter
metadata: { name: /web/db }
spec:
  kmsKeyId: alias/web
  initialValue: { generate: { length: 16 } }
---
apiVersion: secretwire.dev/v1alpha1
kind: Secret
metadata: { name: web/api }
spec:
  initialValue: { generate: { length: 16 } }
---
apiVersion: secretwire.dev/v1alpha1
kind: Service
metadata: { name: web }
spec:
  cluster: prod
  taskRole:
    roleName: web-task
    statements: [{ effect: Allow, actions: [s3:GetObject], resources: ['arn:aws:s3:::b/*'] }]
  containers:
    - name: web
      secrets:
        - { name: DB, parameter: /web/db }
        - { name: USER, secret: web/api, jsonKey: user }
";

pub(super) fn desired(text: &str) -> Desired {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("m.yaml"), text).unwrap();
    let (d, diags) = crate::manifest::load_dir(dir.path());
    assert!(diags.is_empty(), "{diags:?}");
    d
}

/// An account with the service running `web:1` and a customer managed key.
pub(super) fn account(full_arns: bool) -> Observed {
    let mut o = Observed::new(Scope::new("us-east-1", "123456789012"));
    o.keys.insert(
        "alias/web".into(),
        KmsKey { arn: "arn:aws:kms:us-east-1:123456789012:key/k1".into(), customer_managed: true },
    );
    let td = json!({"taskDefinitionArn": "arn:aws:ecs:us-east-1:123456789012:task-definition/web:1", "family": "web", "revision": 1,
                    "containerDefinitions": [{"name": "web", "image": "httpd", "essential": true}]});
    let running = if full_arns { "arn:aws:ecs:us-east-1:123456789012:task-definition/web:1" } else { "web:1" };
    o.revisions.insert(running.into(), std::sync::Arc::new((&td).into()));
    o.newest_revisions.insert("web".into(), Some(std::sync::Arc::new((&td).into())));
    o.services.insert(
        ("prod".into(), "web".into()),
        ObservedService {
            applied: None,
            arn: "arn:aws:ecs:us-east-1:123456789012:service/prod/web".into(),
            status: "ACTIVE".into(),
            task_definition: running.into(),
            deployment_controller: "ECS".into(),
            deployments: vec![],
            events: vec![],
            rollout: None,
        },
    );
    o
}

/// Applies ops to the observed state the way AWS (or moto, `full_arns: false`) would.
fn simulate(o: &mut Observed, plan: &Plan, full_arns: bool, kinds: &[Kind]) {
    let mut registered = None;
    for obj in plan.objects.iter().filter(|o| kinds.contains(&o.key.kind)) {
        for op in obj.changes.iter().flat_map(|c| &c.ops) {
            match op.clone() {
                Op::CreateParameter { name, kind, key_id, description, tags, .. } => {
                    let kind = if kind == ParameterType::SecureString { "SecureString" } else { "String" };
                    let key_id = key_id.or_else(|| (kind == "SecureString").then(|| "alias/aws/ssm".into()));
                    o.parameters.insert(
                        name.clone(),
                        ObservedParameter { name, kind: kind.into(), key_id, description, tags, last_modified: None },
                    );
                }
                Op::TagParameter { name, tags } => o.parameters.get_mut(&name).unwrap().tags.extend(tags),
                Op::CreateSecret { name, key_id, description, tags, .. } => {
                    let arn = format!("arn:aws:secretsmanager:us-east-1:123456789012:secret:{name}-AbCdEf");
                    o.secrets.insert(
                        name.clone(),
                        ObservedSecret {
                            name,
                            arn,
                            kms_key_id: key_id,
                            description,
                            tags,
                            last_changed: None,
                            rotation: Default::default(),
                            deleted: false,
                        },
                    );
                }
                Op::UpdateSecret { .. } => unreachable!("not in these tests"),
                Op::TagSecret { id, tags } => {
                    o.secrets.values_mut().filter(|s| s.arn == id).for_each(|s| s.tags.extend(tags.clone()))
                }
                Op::RotateSecret { id, rules } => {
                    let s = o.secrets.values_mut().find(|s| s.arn == id || s.name == id).unwrap();
                    // As DescribeSecret reports it: the days computed next to the expression.
                    s.rotation = ObservedRotation {
                        enabled: true,
                        lambda_arn: Some(rules.lambda_arn),
                        schedule: Some(rules.schedule),
                        after_days: Some(1),
                        duration: rules.duration,
                    };
                }
                Op::RestoreSecret { id } => {
                    o.secrets.values_mut().find(|s| s.arn == id).unwrap().deleted = false;
                }
                Op::DeleteParameter { .. }
                | Op::DeleteSecret { .. }
                | Op::UntagParameter { .. }
                | Op::UntagSecret { .. }
                | Op::UntagRole { .. }
                | Op::DeleteRole { .. }
                | Op::DeregisterTaskDefinition { .. } => unreachable!("prune ops are not in plan.objects"),
                Op::CancelRotation { id } => {
                    o.secrets.values_mut().find(|s| s.arn == id).unwrap().rotation.enabled = false;
                }
                Op::PutBoundary { name, arn } => {
                    std::sync::Arc::make_mut(o.roles.get_mut(&name).unwrap()).permissions_boundary = Some(arn)
                }
                Op::CreateRole { name, trust, tags, boundary, path } => {
                    let arn = o.scope.role_arn_in(&path, &name);
                    o.roles.insert(
                        name.clone(),
                        std::sync::Arc::new(ObservedRole {
                            name,
                            arn,
                            trust: (&trust).into(),
                            inline_policy: None,
                            managed_policy_arns: Default::default(),
                            tags,
                            permissions_boundary: boundary,
                        }),
                    );
                }
                Op::UpdateTrust { name, trust } => {
                    std::sync::Arc::make_mut(o.roles.get_mut(&name).unwrap()).trust = (&trust).into()
                }
                Op::PutRolePolicy { name, document } => {
                    std::sync::Arc::make_mut(o.roles.get_mut(&name).unwrap()).inline_policy = Some((&document).into())
                }
                Op::DeleteRolePolicy { name } => {
                    std::sync::Arc::make_mut(o.roles.get_mut(&name).unwrap()).inline_policy = None
                }
                Op::AttachPolicy { name, arn } => {
                    std::sync::Arc::make_mut(o.roles.get_mut(&name).unwrap()).managed_policy_arns.insert(arn);
                }
                Op::DetachPolicy { name, arn } => {
                    std::sync::Arc::make_mut(o.roles.get_mut(&name).unwrap()).managed_policy_arns.remove(&arn);
                }
                Op::TagRole { name, tags } => {
                    std::sync::Arc::make_mut(o.roles.get_mut(&name).unwrap()).tags.extend(tags)
                }
                Op::RegisterTaskDefinition { mut body, .. } => {
                    let family = body["family"].as_str().unwrap().to_string();
                    let rev = o
                        .newest_revisions
                        .get(&family)
                        .cloned()
                        .flatten()
                        .map_or(0, |n| n.value()["revision"].as_u64().unwrap())
                        + 1;
                    let arn = format!("arn:aws:ecs:us-east-1:123456789012:task-definition/{family}:{rev}");
                    body["taskDefinitionArn"] = json!(arn);
                    body["revision"] = json!(rev);
                    body["status"] = json!("ACTIVE");
                    o.newest_revisions.insert(family, Some(std::sync::Arc::new((&body).into())));
                    o.revisions.insert(arn.clone(), std::sync::Arc::new((&body).into()));
                    registered = Some(arn);
                }
                Op::UpdateService { cluster, service, task_definition, digest, .. } => {
                    let td = task_definition.or(registered.clone()).unwrap();
                    o.services.get_mut(&(cluster.clone(), service.clone())).unwrap().applied =
                        Some(crate::taskdef::applied_tag(&td, &digest));
                    // Moto echoes what was sent (`web:2`); AWS answers with the full ARN.
                    let shown = if full_arns { td.clone() } else { crate::arn::task_definition_short(&td).to_string() };
                    let body = o.revisions.get(&td).cloned().unwrap();
                    o.revisions.insert(shown.clone(), body);
                    o.services.get_mut(&(cluster, service)).unwrap().task_definition = shown;
                }
            }
        }
    }
}

/// What the staged plan reads between its stages: (running revisions, families' newest).
fn reads(d: &Desired, o: &Observed) -> (Vec<String>, Vec<String>) {
    let stores = plan_stores(d, o, "default");
    let services = draft_services(d, o, "default", &stores, false);
    let running: Vec<String> = services.running_needed(o).into_iter().collect();
    let newest = services.render(o).newest_needed(o).into_iter().collect();
    (running, newest)
}

/// The example manifests, applied (stores, then services) to `account(true)`.
pub(super) fn applied_example() -> (Desired, Observed) {
    let d = desired(MANIFESTS);
    let mut o = account(true);
    let first = plan(&d, &o, "default");
    simulate(&mut o, &first, true, &[Kind::Parameter, Kind::Secret]);
    let second = plan(&d, &o, "default");
    simulate(&mut o, &second, true, &[Kind::Service]);
    (d, o)
}

fn writes(p: &Plan) -> usize {
    p.objects.iter().flat_map(|o| &o.changes).map(|c| c.ops.len()).sum()
}

#[test]
fn plan_apply_plan_converges_with_aws_and_emulator_answers() {
    for full_arns in [true, false] {
        let d = desired(MANIFESTS);
        let mut o = account(full_arns);
        let first = plan(&d, &o, "default");
        assert!(!first.has_failures(), "{first:#?}");
        simulate(&mut o, &first, full_arns, &[Kind::Parameter, Kind::Secret]);
        let second = plan(&d, &o, "default");
        simulate(&mut o, &second, full_arns, &[Kind::Service]);
        let third = plan(&d, &o, "default");
        assert_eq!(writes(&third), 0, "full_arns={full_arns}: {third:#?}");
        assert!(!third.has_changes());

        let role = &o.roles["web-execution"];
        let doc = role.inline_policy.as_ref().unwrap().to_string();
        assert!(doc.contains("arn:aws:ssm:us-east-1:123456789012:parameter/web/db"));
        assert!(doc.contains("arn:aws:secretsmanager:us-east-1:123456789012:secret:web/api-AbCdEf"));
        assert!(doc.contains("arn:aws:kms:us-east-1:123456789012:key/k1"), "customer managed key granted");
        let newest = o.newest_revisions["web"].as_ref().unwrap().value();
        assert_eq!(
            newest["containerDefinitions"][0]["secrets"][1]["valueFrom"],
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:web/api-AbCdEf:user::"
        );
        assert_eq!(newest["taskRoleArn"], "arn:aws:iam::123456789012:role/web-task");
    }
}

#[test]
fn an_unowned_secret_is_a_conflict_and_blocks_its_services_only() {
    let d = desired(MANIFESTS);
    let mut o = account(true);
    o.secrets.insert(
        "web/api".into(),
        ObservedSecret {
            name: "web/api".into(),
            arn: "arn:aws:secretsmanager:us-east-1:123456789012:secret:web/api-XyZ123".into(),
            kms_key_id: None,
            description: None,
            tags: BTreeMap::new(),
            last_changed: None,
            rotation: Default::default(),
            deleted: false,
        },
    );
    let p = plan(&d, &o, "default");
    let secret = p.object(&ObjectKey::new(Kind::Secret, "web/api")).unwrap();
    assert_eq!(secret.problems[0].kind, ProblemKind::Conflict);
    assert!(secret.changes.iter().all(|c| c.ops.is_empty()), "never overwritten");
    let web = p.object(&ObjectKey::new(Kind::Service, "web")).unwrap();
    assert_eq!(web.problems[0].kind, ProblemKind::Blocked);
    assert!(web.changes.is_empty());
    let param = p.object(&ObjectKey::new(Kind::Parameter, "/web/db")).unwrap();
    assert_eq!(param.changes[0].action, Action::Create, "other objects still planned");

    // Another controller's resource is a conflict even with adopt: true.
    let adopting = desired(&MANIFESTS.replace("  initialValue: { generate: { length: 16 } }\n---\napiVersion: secretwire.dev/v1alpha1\nkind: Service", "  adopt: true\n  initialValue: { generate: { length: 16 } }\n---\napiVersion: secretwire.dev/v1alpha1\nkind: Service"));
    o.secrets.get_mut("web/api").unwrap().tags.insert(TAG_MANAGED_BY.into(), "team-b".into());
    let p = plan(&adopting, &o, "default");
    let secret = p.object(&ObjectKey::new(Kind::Secret, "web/api")).unwrap();
    assert!(secret.problems[0].message.contains("team-b"), "{:?}", secret.problems);
    o.secrets.get_mut("web/api").unwrap().tags.clear();
    let p = plan(&adopting, &o, "default");
    let secret = p.object(&ObjectKey::new(Kind::Secret, "web/api")).unwrap();
    assert!(secret.problems.is_empty());
    assert!(
        matches!(secret.changes[0].ops[..], [Op::TagSecret { .. }]),
        "adopting only adds tags: {:?}",
        secret.changes
    );
}

#[test]
fn missing_external_references_and_services_are_errors_not_writes() {
    let d = desired(&MANIFESTS.replace("secret: web/api, jsonKey: user", "secret: shared/external"));
    let mut o = account(true);
    let p = plan(&d, &o, "default");
    let web = p.object(&ObjectKey::new(Kind::Service, "web")).unwrap();
    assert!(
        web.problems.iter().any(|pr| pr.resource == "secret shared/external" && pr.message.contains("not found")),
        "{web:?}"
    );
    assert!(web.changes.is_empty());
    o.services.clear();
    let p = plan(&d, &o, "default");
    let web = p.object(&ObjectKey::new(Kind::Service, "web")).unwrap();
    assert!(web.problems[0].message.contains("does not create them"));
}

#[test]
fn a_secret_without_an_initial_value_must_exist() {
    let d = desired(&MANIFESTS.replace(
        "kind: Secret\nmetadata: { name: web/api }\nspec:\n  initialValue: { generate: { length: 16 } }",
        "kind: Secret\nmetadata: { name: web/api }\nspec: {}",
    ));
    let p = plan(&d, &account(true), "default");
    let s = p.object(&ObjectKey::new(Kind::Secret, "web/api")).unwrap();
    assert_eq!(s.problems[0].kind, ProblemKind::Error);
    assert!(s.problems[0].message.contains("no initialValue"));
}

#[test]
fn a_service_still_running_what_apply_deployed_is_planned_without_reading_its_revision() {
    let (d, mut o) = applied_example();
    let web = &o.services[&("prod".to_string(), "web".to_string())];
    assert!(web.applied.as_deref().unwrap().starts_with("web:2 "), "{:?}", web.applied);

    // A new process: no revision read yet.
    o.revisions.clear();
    o.newest_revisions.clear();
    assert_eq!(reads(&d, &o), (vec![], vec![]), "nothing to read");
    let fresh = plan(&d, &o, "default");
    assert_eq!(writes(&fresh), 0);
    assert!(!fresh.has_changes());

    // Different inputs (a jsonKey changed): the revision must be read.
    let edited = desired(&MANIFESTS.replace("jsonKey: user", "jsonKey: username"));
    assert_eq!(reads(&edited, &o).0, vec![web.task_definition.to_string()]);

    // Someone deployed another revision: the tag no longer vouches for it.
    o.services.get_mut(&("prod".to_string(), "web".to_string())).unwrap().task_definition =
        "arn:aws:ecs:us-east-1:123456789012:task-definition/web:1".into();
    assert!(reads(&d, &o).0.contains(&"arn:aws:ecs:us-east-1:123456789012:task-definition/web:1".to_string()));
}

#[test]
fn each_stage_names_only_the_reads_the_next_one_needs() {
    let (d, mut o) = applied_example();
    let web = ("prod".to_string(), "web".to_string());
    // Deployed by another tool (no applied tag), its revision in the cache: the
    // running revision equals the rendered one, so no family's newest is read.
    o.services.get_mut(&web).unwrap().applied = None;
    o.newest_revisions.clear();
    assert_eq!(reads(&d, &o), (vec![], vec![]));
    assert_eq!(writes(&plan(&d, &o, "default")), 0);
    // Different inputs: the running revision differs, so the newest is read before deciding.
    let edited = desired(&MANIFESTS.replace("jsonKey: user", "jsonKey: username"));
    assert_eq!(reads(&edited, &o), (vec![], vec!["web".to_string()]));
    // Nothing in the cache: stage 1 names the running revision, nothing more yet.
    o.revisions.clear();
    assert_eq!(reads(&d, &o).0, [o.services[&web].task_definition.clone()]);
}

#[test]
fn without_a_declared_family_the_service_keeps_the_family_it_runs_and_its_revision_tags() {
    let d = desired(MANIFESTS);
    let mut o = account(true);
    // The service runs `storefront:7` (deployed by another tool), tagged by its team.
    let arn = "arn:aws:ecs:us-east-1:123456789012:task-definition/storefront:7";
    let td = json!({"taskDefinitionArn": arn, "family": "storefront", "revision": 7,
                    "containerDefinitions": [{"name": "web", "image": "httpd"}],
                    "tags": [{"key": "team", "value": "shop"}]});
    o.revisions.insert(arn.into(), std::sync::Arc::new((&td).into()));
    o.newest_revisions.clear();
    o.services.get_mut(&("prod".to_string(), "web".to_string())).unwrap().task_definition = arn.into();
    let p = plan(&d, &o, "default");
    let web = p.object(&ObjectKey::new(Kind::Service, "web")).unwrap();
    let register = web
        .changes
        .iter()
        .flat_map(|c| &c.ops)
        .find_map(|op| if let Op::RegisterTaskDefinition { body, tags } = op { Some((body, tags)) } else { None })
        .expect("a registration");
    assert_eq!(register.0["family"], "storefront", "not moved to a family named after the manifest");
    assert_eq!(register.1.get("team").map(String::as_str), Some("shop"), "the running revision's tags kept");
    assert_eq!(register.1.get("secretwire.dev/source").map(String::as_str), Some("Service/web"));
}

/// The example with `rotation` on its secret (`{rotation}` is the YAML of the field).
fn with_rotation(rotation: &str) -> Desired {
    desired(&MANIFESTS.replace(
        "metadata: { name: web/api }\nspec:\n",
        &format!("metadata: {{ name: web/api }}\nspec:\n  rotation: {rotation}\n"),
    ))
}

fn secret_ops(p: &Plan) -> Vec<Op> {
    p.object(&ObjectKey::new(Kind::Secret, "web/api")).unwrap().changes.iter().flat_map(|c| c.ops.clone()).collect()
}

const FN: &str = "arn:aws:lambda:us-east-1:123456789012:function:rotate-api";

#[test]
fn rotation_is_configured_without_rotating_then_left_alone_changed_and_cancelled() {
    let on = |schedule: &str| with_rotation(&format!("{{ lambdaArn: '{FN}', schedule: '{schedule}', duration: 3h }}"));
    let d = on("rate(30 days)");
    let mut o = account(true);
    let first = plan(&d, &o, "default");
    let ops = secret_ops(&first);
    assert!(
        matches!(&ops[..], [Op::CreateSecret { .. }, Op::RotateSecret { id, rules }]
        if id == "web/api" && rules.schedule == "rate(30 days)" && rules.duration.as_deref() == Some("3h") && !rules.rotate_immediately),
        "{ops:?}"
    );
    simulate(&mut o, &first, true, &[Kind::Parameter, Kind::Secret]);
    assert!(secret_ops(&plan(&d, &o, "default")).is_empty(), "a second apply writes nothing");

    let changed = plan(&on("cron(0 4 ? * SUN *)"), &o, "default");
    let ops = secret_ops(&changed);
    assert!(
        matches!(&ops[..], [Op::RotateSecret { rules, .. }] if rules.schedule == "cron(0 4 ? * SUN *)" && !rules.rotate_immediately)
    );
    let line = &changed.object(&ObjectKey::new(Kind::Secret, "web/api")).unwrap().changes[0].detail;
    assert_eq!(
        line,
        "rotation: cron(0 4 ? * SUN *), window 3h by rotate-api (now rate(30 days), window 3h by rotate-api)"
    );

    // No `rotation`: whatever AWS has is left alone.
    assert!(secret_ops(&plan(&desired(MANIFESTS), &o, "default")).is_empty());
    let off = plan(&with_rotation("{ enabled: false }"), &o, "default");
    assert!(matches!(&secret_ops(&off)[..], [Op::CancelRotation { .. }]));
    simulate(&mut o, &off, true, &[Kind::Secret]);
    assert!(secret_ops(&plan(&with_rotation("{ enabled: false }"), &o, "default")).is_empty());
}

#[test]
fn a_schedule_set_in_days_matches_its_rate_and_rotate_immediately_is_sent_only_when_asked() {
    let (_, mut o) = applied_example();
    o.secrets.get_mut("web/api").unwrap().rotation = ObservedRotation {
        enabled: true,
        lambda_arn: Some(FN.into()),
        schedule: None,
        after_days: Some(30),
        duration: None,
    };
    let same = with_rotation(&format!("{{ lambdaArn: '{FN}', schedule: 'rate(30 days)' }}"));
    assert!(secret_ops(&plan(&same, &o, "default")).is_empty(), "AutomaticallyAfterDays 30 is rate(30 days)");
    let now = with_rotation(&format!("{{ lambdaArn: '{FN}', schedule: 'rate(7 days)', rotateImmediately: true }}"));
    assert!(
        matches!(&secret_ops(&plan(&now, &o, "default"))[..], [Op::RotateSecret { rules, .. }] if rules.rotate_immediately)
    );
    let other_fn = with_rotation(
        "{ lambdaArn: 'arn:aws:lambda:us-east-1:123456789012:function:other', schedule: 'rate(30 days)' }",
    );
    assert_eq!(secret_ops(&plan(&other_fn, &o, "default")).len(), 1, "another function is a change");
}

#[test]
fn a_permissions_boundary_is_set_on_created_roles_put_back_when_it_drifts_and_left_alone_without_the_flag() {
    const B: &str = "arn:aws:iam::123456789012:policy/secretwire-boundary";
    let mut d = desired(MANIFESTS);
    d.platform.permissions_boundary = Some(B.into());
    let mut o = account(true);
    let first = plan(&d, &o, "default");
    let created: Vec<&Op> = first.objects.iter().flat_map(|o| &o.changes).flat_map(|c| &c.ops).collect();
    let bounded = created.iter().filter(|op| matches!(op, Op::CreateRole { boundary: Some(b), .. } if b == B)).count();
    assert_eq!(bounded, 2, "both roles created with it");
    simulate(&mut o, &first, true, &[Kind::Parameter, Kind::Secret]);
    let second = plan(&d, &o, "default");
    simulate(&mut o, &second, true, &[Kind::Service]);
    assert_eq!(writes(&plan(&d, &o, "default")), 0);

    // Someone removed it: put back, before any policy write.
    std::sync::Arc::make_mut(o.roles.get_mut("web-task").unwrap()).permissions_boundary = None;
    std::sync::Arc::make_mut(o.roles.get_mut("web-task").unwrap()).inline_policy = None;
    let repair = plan(&d, &o, "default");
    let ops: Vec<&Op> = repair.objects.iter().flat_map(|o| &o.changes).flat_map(|c| &c.ops).collect();
    let at = |want: fn(&Op) -> bool| ops.iter().position(|op| want(op)).unwrap();
    assert!(
        at(|op| matches!(op, Op::PutBoundary { name, .. } if name == "web-task"))
            < at(|op| matches!(op, Op::PutRolePolicy { .. }))
    );
    // Without the flag a boundary is neither required nor removed.
    assert_eq!(writes(&plan(&desired(MANIFESTS), &o, "default")), 1, "only the inline policy");
}

/// A Service reading values another Target holds: granted by their ARNs in
/// that account (a customer key decrypting through its own region), waiting
/// while one is not created, blocked while one's own plan fails, and warned
/// about when no task in this account could read it.
#[test]
fn values_of_another_target_are_granted_by_their_arns_and_warned_about_when_unreadable() {
    let mut d = desired(MANIFESTS);
    let (db, api) = (ObjectKey::new(Kind::Parameter, "/web/db"), ObjectKey::new(Kind::Secret, "web/api"));
    // Both values live in `shared` now: this part holds only the service.
    d.parameters.clear();
    d.secrets.clear();
    d.foreign.insert(db.clone(), Some("shared".into()));
    d.foreign.insert(api.clone(), Some("shared".into()));
    let shared = Scope::new("eu-west-1", "222222222222");
    let secret_arn = "arn:aws:secretsmanager:eu-west-1:222222222222:secret:web/api-AbCdEf";
    let key = "arn:aws:kms:eu-west-1:222222222222:key/k9";
    let value = |arn: Option<&str>, customer_key: Option<&str>| ForeignValue {
        target: Some("shared".into()),
        scope: shared.clone(),
        arn: arn.map(str::to_string),
        customer_key: customer_key.map(str::to_string),
        trouble: None,
    };
    let mut o = account(true);
    o.foreign.insert(db.clone(), value(Some("arn:aws:ssm:eu-west-1:222222222222:parameter/web/db"), None));
    o.foreign.insert(api.clone(), value(Some(secret_arn), Some(key)));
    let p = plan(&d, &o, "default");
    let web = p.object(&ObjectKey::new(Kind::Service, "web")).unwrap();
    let warnings: Vec<&str> =
        web.problems.iter().filter(|w| w.kind == ProblemKind::Warning).map(|w| w.resource.as_str()).collect();
    assert_eq!(warnings, ["Parameter//web/db"], "a parameter is never read across accounts: {web:?}");
    assert!(!p.has_failures(), "a warning is not a failure: {web:?}");
    let td = web.rendered.as_ref().or_else(|| {
        web.changes.iter().flat_map(|c| &c.ops).find_map(|op| match op {
            Op::RegisterTaskDefinition { body, .. } => Some(body),
            _ => None,
        })
    });
    let td = td.expect("a registration");
    assert_eq!(td["containerDefinitions"][0]["secrets"][1]["valueFrom"], format!("{secret_arn}:user::"));
    let policy = web
        .changes
        .iter()
        .flat_map(|c| &c.ops)
        .find_map(|op| match op {
            Op::PutRolePolicy { document, .. } => Some(document.clone()),
            _ => None,
        })
        .expect("an execution role policy");
    let decrypt = policy["Statement"].as_array().unwrap().iter().find(|s| s["Sid"] == "DecryptSecrets").unwrap();
    assert_eq!(decrypt["Resource"], json!([key]));
    assert_eq!(decrypt["Condition"]["StringEquals"]["kms:ViaService"], "secretsmanager.eu-west-1.amazonaws.com");

    // Under the AWS managed key, the secret is unreadable here: warned about too.
    o.foreign.insert(api.clone(), value(Some(secret_arn), None));
    let p = plan(&d, &o, "default");
    let web = p.object(&ObjectKey::new(Kind::Service, "web")).unwrap();
    assert!(web.problems.iter().any(|w| w.resource == "Secret/web/api" && w.message.contains("AWS managed key")));

    // Not created yet: waits for it (apply blocks it once the stores ran).
    o.foreign.insert(api.clone(), value(None, Some(key)));
    let web = plan(&d, &o, "default").objects.into_iter().find(|x| x.key.kind == Kind::Service).unwrap();
    assert_eq!(web.waits_on, std::slice::from_ref(&api));
    // Its own plan failed: blocked, naming where it lives.
    o.foreign.insert(api.clone(), ForeignValue { trouble: Some("conflict".into()), ..value(None, None) });
    let web = plan(&d, &o, "default").objects.into_iter().find(|x| x.key.kind == Kind::Service).unwrap();
    assert!(
        web.problems
            .iter()
            .any(|b| b.kind == ProblemKind::Blocked && b.resource == "Secret/web/api (in Target shared)"),
        "{web:?}"
    );
}
