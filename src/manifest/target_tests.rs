//! `kind: Target` and `spec.target`: each mistake reported at its field, the
//! repo split by target with cross-target references marked foreign, and the
//! tenant `targets` rule.

use std::fs;

use super::tenant::Tenants;
use super::tests::{dir_with, located};
use super::*;
use crate::model::{Kind, ObjectKey};

fn target(name: &str, account: &str, region: &str, role: &str) -> String {
    format!(
        "apiVersion: secretwire.dev/v1alpha1\nkind: Target\nmetadata: {{ name: {name} }}\nspec:\n  account: \"{account}\"\n  region: {region}\n  roleArn: {role}\n"
    )
}

const VALUES: &str = "apiVersion: secretwire.dev/v1alpha1
kind: Secret
metadata: { name: shared/db }
spec:
  target: shared
  initialValue: { generate: { length: 32 } }
---
apiVersion: secretwire.dev/v1alpha1
kind: Parameter
metadata: { name: /web/token }
spec:
  target: apps
  initialValue: { generate: { length: 32 } }
";

const WEB: &str = "apiVersion: secretwire.dev/v1alpha1
kind: Service
metadata: { name: web }
spec:
  target: apps
  cluster: prod
  containers:
    - name: web
      secrets:
        - { name: DB, secret: shared/db }
        - { name: TOKEN, parameter: /web/token }
        - { name: LOCAL, parameter: /home/flag }
";

#[test]
fn targets_load_and_the_repo_splits_with_cross_target_reads_marked_foreign() {
    let targets = [
        target("shared", "222222222222", "us-east-1", "arn:aws:iam::222222222222:role/secretwire"),
        target("apps", "333333333333", "eu-west-1", "arn:aws:iam::333333333333:role/ops/secretwire"),
    ]
    .join("---\n");
    let d = dir_with(&[("targets.yaml", &targets), ("values.yaml", VALUES), ("web.yaml", WEB)]);
    let (desired, diags) = load_dir(d.path());
    assert!(diags.is_empty(), "{diags:?}");
    assert_eq!(desired.targets["apps"].region, "eu-west-1");
    assert_eq!(desired.services["web"].target.as_deref(), Some("apps"));

    let parts = crate::fleet::split::split(&desired);
    let names: Vec<Option<&str>> = parts.iter().map(|p| p.target.as_deref()).collect();
    assert_eq!(names, [None, Some("apps"), Some("shared")], "the controller's own account first");
    let apps = &parts[1].desired;
    assert_eq!(apps.services.keys().collect::<Vec<_>>(), ["web"]);
    assert_eq!(apps.parameters.keys().collect::<Vec<_>>(), ["/web/token"]);
    assert!(apps.secrets.is_empty());
    // The secret is read from `shared`; its own parameter and the external one are not foreign.
    assert_eq!(
        apps.foreign.iter().collect::<Vec<_>>(),
        [(&ObjectKey::new(Kind::Secret, "shared/db"), &Some("shared".to_string()))]
    );
    assert_eq!(parts[2].desired.secrets.keys().collect::<Vec<_>>(), ["shared/db"]);
    assert!(parts[0].desired.services.is_empty() && parts[0].desired.foreign.is_empty());
}

#[test]
fn every_mistake_in_a_target_is_reported_at_its_field() {
    let bad = [
        target("a", "12345", "useast1", "arn:aws:iam::999999999999:role/x"),
        target("b", "222222222222", "us-east-1", "arn:aws:iam::222222222222:user/x"),
        target("c", "222222222222", "us-east-1", "arn:aws:iam::222222222222:role/y"),
        target("d", "444444444444", "cn-north-1", "arn:aws:iam::444444444444:role/y")
            + "  externalId: \"x\"\n  sessionName: \"has space\"\n",
    ]
    .join("---\n");
    let web = WEB.replace("target: apps", "target: nowhere");
    let d = dir_with(&[("targets.yaml", &bad), ("web.yaml", &web)]);
    let (desired, diags) = load_dir(d.path());
    assert_eq!(
        located(d.path(), &diags),
        [
            "targets.yaml:5:12: account `12345` must be 12 digits (quote it in YAML)",
            "targets.yaml:6:11: region `useast1` is not an AWS region name such as us-east-1",
            "targets.yaml:7:12: roleArn is in account 999999999999, not in the Target's account 12345",
            "targets.yaml:15:12: roleArn `arn:aws:iam::222222222222:user/x` is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)",
            "targets.yaml:19:19: account 222222222222 in us-east-1 is already Target/b",
            "targets.yaml:31:12: roleArn is in partition `aws`, the region in `aws-cn`",
            "targets.yaml:32:15: externalId must be 2 to 1224 letters, digits or _+=,.@:/- (sts:ExternalId)",
            "targets.yaml:33:16: sessionName must be 2 to 64 letters, digits or _+=,.@- (RoleSessionName)",
            "web.yaml:5:11: no Target `nowhere` in the manifests (declared: `a`, `b`, `c`, `d`)",
        ]
    );
    assert!(desired.targets.is_empty(), "every one is invalid: {:?}", desired.targets.keys());
    assert!(desired.invalid.contains(&ObjectKey::new(Kind::Service, "web")));
}

#[test]
fn a_tenant_declares_and_names_only_the_targets_it_is_given() {
    let tenants = "apiVersion: secretwire.dev/v1alpha1
kind: Tenant
metadata: { name: web }
spec:
  paths: [\"teams/web/**\"]
  values: [\"/web/*\", \"/home/*\", \"shared/*\"]
  rolePrefix: web
---
apiVersion: secretwire.dev/v1alpha1
kind: Tenant
metadata: { name: platform }
spec:
  paths: [\"platform/**\"]
  values: [\"shared/*\", \"/web/*\"]
  rolePrefix: platform-
  targets: [\"*\"]
";
    let t = tempfile::tempdir().unwrap();
    fs::write(t.path().join("tenants.yaml"), tenants).unwrap();
    let tenants = Tenants::load(&t.path().join("tenants.yaml")).unwrap();
    let targets = [
        target("shared", "222222222222", "us-east-1", "arn:aws:iam::222222222222:role/secretwire"),
        target("apps", "333333333333", "eu-west-1", "arn:aws:iam::333333333333:role/secretwire"),
    ]
    .join("---\n");
    let rogue = target("mine", "555555555555", "us-east-1", "arn:aws:iam::555555555555:role/admin");
    let d = dir_with(&[
        ("platform/targets.yaml", &targets),
        ("platform/values.yaml", VALUES),
        ("teams/web/web.yaml", WEB),
        ("teams/web/mine.yaml", &rogue),
    ]);
    let l = load(d.path(), Some(&tenants));
    assert!(l.errors.is_empty(), "{:?}", l.errors);
    assert_eq!(
        located(d.path(), &l.refusals),
        [
            "teams/web/mine.yaml:3:19: tenant `web`: rule `targets`: Target/mine declares Target `mine`, outside the \
             tenant's targets (none: only the controller's own account)",
            "teams/web/web.yaml:5:11: tenant `web`: rule `targets`: Service/web names Target `apps`, outside the \
             tenant's targets (none: only the controller's own account)",
        ]
    );
    assert!(l.desired.targets.contains_key("apps") && !l.desired.targets.contains_key("mine"));
    assert!(l.desired.refused.contains(&ObjectKey::new(Kind::Service, "web")));
}

#[test]
fn equal_service_family_and_role_names_are_two_things_in_two_accounts_and_one_in_one() {
    let svc = |name: &str, target: &str| {
        format!(
            "apiVersion: secretwire.dev/v1alpha1\nkind: Service\nmetadata: {{ name: {name} }}\nspec:\n  target: {target}\n  cluster: main\n  serviceName: web\n  taskDefinition: {{ family: web }}\n  executionRole: {{ roleName: web-execution }}\n  containers: [{{ name: web }}]\n"
        )
    };
    let targets = [
        target("staging", "222222222222", "us-east-1", "arn:aws:iam::222222222222:role/secretwire"),
        target("prod", "333333333333", "us-east-1", "arn:aws:iam::333333333333:role/secretwire"),
        target("prod-west", "333333333333", "us-west-2", "arn:aws:iam::333333333333:role/secretwire"),
    ]
    .join("---\n");
    let d = dir_with(&[
        ("t.yaml", &targets),
        ("a.yaml", &svc("web-staging", "staging")),
        ("b.yaml", &svc("web-prod", "prod")),
    ]);
    let (desired, diags) = load_dir(d.path());
    assert!(diags.is_empty(), "{diags:?}");
    assert_eq!(desired.services.len(), 2);
    // Two regions of one account share IAM: the role is claimed twice there.
    let d = dir_with(&[
        ("t.yaml", &targets),
        ("b.yaml", &svc("web-prod", "prod")),
        ("c.yaml", &svc("web-west", "prod-west")),
    ]);
    let (_, diags) = load_dir(d.path());
    assert_eq!(
        located(d.path(), &diags),
        ["c.yaml:3:19: role `web-execution (account 333333333333)` is already managed by Service/web-prod"]
    );
}

#[test]
fn validate_warns_about_values_no_task_in_the_readers_account_can_read() {
    let targets = [
        target("shared", "222222222222", "us-east-1", "arn:aws:iam::222222222222:role/secretwire"),
        target("apps", "333333333333", "eu-west-1", "arn:aws:iam::333333333333:role/secretwire"),
    ]
    .join("---\n");
    let d = dir_with(&[
        ("targets.yaml", &targets),
        ("values.yaml", &VALUES.replace("target: apps", "target: shared")),
        ("web.yaml", WEB),
    ]);
    let (desired, diags) = load_dir(d.path());
    assert!(diags.is_empty(), "{diags:?}");
    let warnings: Vec<String> = crate::fleet::split::static_warnings(&desired)
        .into_iter()
        .map(|w| w.strip_prefix(&format!("{}/", d.path().display())).unwrap_or(&w).to_string())
        .collect();
    assert_eq!(
        warnings,
        [
            "web.yaml:3: warning: Service/web reads Parameter//web/token, which is in account 222222222222; ECS reads \
             a parameter only from the task's own account (333333333333)",
            "web.yaml:3: warning: Service/web reads Secret/shared/db, which is in account 222222222222 under the AWS \
             managed key, which tasks in account 333333333333 cannot use (give it a customer managed kmsKeyId)",
        ]
    );
    // A customer managed key, and the parameter in the reader's own account: nothing to say.
    let values = VALUES
        .replace("  target: shared\n  initialValue", "  target: shared\n  kmsKeyId: alias/shared\n  initialValue");
    let d = dir_with(&[("targets.yaml", &targets), ("values.yaml", &values), ("web.yaml", WEB)]);
    let (desired, _) = load_dir(d.path());
    assert!(crate::fleet::split::static_warnings(&desired).is_empty());
}
