//! Tenant rules: each refused at its exact location, then allowed by the
//! tenant file or by sharing; the rest of the repo still loads.

use std::fs;
use std::path::Path;

use super::tenant::Tenants;
use super::*;
use crate::model::{Kind, ObjectKey};

const TENANTS: &str = include_str!("../../tests/fixtures/tenants/tenants.yaml");
/// The service: AdministratorAccess, `iam:*` on `*`, and another team's secret.
const GREEDY: &str = include_str!("../../tests/fixtures/tenants/greedy.yaml");
const PAYMENTS_DB: &str = include_str!("../../tests/fixtures/tenants/payments-db.yaml");

fn repo(files: &[(&str, &str)], tenants: &str) -> (tempfile::TempDir, tempfile::TempDir, Tenants) {
    let d = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let p = d.path().join(name);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }
    let t = tempfile::tempdir().unwrap();
    fs::write(t.path().join("tenants.yaml"), tenants).unwrap();
    let loaded = Tenants::load(&t.path().join("tenants.yaml")).unwrap();
    (d, t, loaded)
}

fn located(dir: &Path, diags: &[Diagnostic]) -> Vec<String> {
    diags
        .iter()
        .map(|d| format!("{}:{}:{}: {}", d.path.strip_prefix(dir).unwrap().display(), d.line, d.column, d.message))
        .collect()
}

fn service(key: &str) -> ObjectKey {
    ObjectKey::new(Kind::Service, key)
}

#[test]
fn the_greedy_service_is_refused_rule_by_rule_at_each_field_and_the_rest_still_loads() {
    // Named `api`, its default execution role `api-execution` lacks the prefix.
    let greedy = GREEDY.replace("name: web-greedy\n", "name: api\n");
    let (d, _t, tenants) = repo(&[("teams/web/api.yaml", &greedy), ("platform/db.yaml", PAYMENTS_DB)], TENANTS);
    let l = load(d.path(), Some(&tenants));
    assert!(l.errors.is_empty(), "{:?}", l.errors);
    let got = located(d.path(), &l.refusals);
    let want_prefixes = [
        "teams/web/api.yaml:4:9: tenant `web`: rule `rolePrefix`: Service/api names role `api-execution`",
        "teams/web/api.yaml:8:25: tenant `web`: rule `managedPolicyArns`: role `api-execution` attaches `arn:aws:iam::aws:policy/AdministratorAccess`",
        "teams/web/api.yaml:12:36: tenant `web`: rule `statements`: `iam:*` grants every action of `iam`",
        "teams/web/api.yaml:12:45: tenant `web`: rule `statements`: `sts:AssumeRole` is an `sts:` action",
        "teams/web/api.yaml:12:63: tenant `web`: rule `statements`: `secretsmanager:*` grants every action",
        "teams/web/api.yaml:16:35: tenant `web`: rule `values`: Service/api reads secret `payments/prod-db`, outside the tenant's values (`/web/*`, `web/*`) and declared by tenant `platform`, which does not share it with `web`",
    ];
    assert_eq!(got.len(), want_prefixes.len(), "{got:#?}");
    for (g, w) in got.iter().zip(want_prefixes) {
        assert!(g.starts_with(w), "\n got: {g}\nwant: {w}…");
    }
    // `api-execution` is the default name: it is held to the prefix too.
    assert!(got[0].contains("does not start with `web-`"));
    assert!(l.desired.refused.contains(&service("api")) && l.desired.invalid.contains(&service("api")));
    assert!(l.desired.services.is_empty());
    assert!(l.desired.secrets.contains_key("payments/prod-db"), "the other tenant's object still loads");
    assert_eq!(l.desired.secrets["payments/prod-db"].origin.tenant.as_deref(), Some("platform"));
}

#[test]
fn each_rule_is_lifted_by_the_tenant_file_or_by_sharing() {
    let fixed = GREEDY
        .replace("  executionRole:\n    managedPolicyArns: [arn:aws:iam::aws:policy/AdministratorAccess]\n", "")
        .replace(
            "{ effect: Allow, actions: [\"iam:*\", \"sts:AssumeRole\", \"secretsmanager:*\"], resources: [\"*\"] }",
            "{ effect: Allow, actions: [\"s3:GetObject\"], resources: [\"arn:aws:s3:::web-assets/*\"] }",
        );
    // `web-greedy` starts with `web-`, so its default execution role does too.
    let shared = format!("{PAYMENTS_DB}  sharedWith: [web]\n");
    let (d, _t, tenants) = repo(&[("teams/web/api.yaml", &fixed), ("platform/db.yaml", &shared)], TENANTS);
    let l = load(d.path(), Some(&tenants));
    assert!(l.errors.is_empty() && l.refusals.is_empty(), "{:?} {:?}", l.errors, l.refusals);
    let svc = &l.desired.services["web-greedy"];
    assert_eq!(svc.origin.tenant.as_deref(), Some("web"));

    // AdministratorAccess only when the platform lists it; s3:PutObject on `*` only where allowStatements opens it.
    let payments_svc = "apiVersion: secretwire.dev/v1alpha1
kind: Service
metadata:
  name: platform-api
spec:
  cluster: prod
  executionRole:
    managedPolicyArns: [arn:aws:iam::123456789012:policy/platform-read]
  taskRole:
    roleName: platform-task
    statements:
      - { effect: Allow, actions: [\"s3:PutObject\"], resources: [\"*\"] }
  containers:
    - name: app
      secrets:
        - { name: DB, secret: payments/prod-db }
";
    let (d, _t, tenants) = repo(&[("platform/api.yaml", payments_svc)], TENANTS);
    let l = load(d.path(), Some(&tenants));
    assert!(l.refusals.is_empty(), "{:?}", l.refusals);
    // The same service in web's tree is refused on all three counts.
    let as_web = payments_svc.replace("platform-api", "web-x").replace("platform-task", "web-task");
    let (d, _t, tenants) = repo(&[("teams/web/x.yaml", &as_web)], TENANTS);
    let rules: Vec<String> = load(d.path(), Some(&tenants))
        .refusals
        .iter()
        .map(|r| r.message.split(": ").nth(1).unwrap_or_default().to_string())
        .collect();
    assert_eq!(rules, ["rule `managedPolicyArns`", "rule `statements`", "rule `values`"]);
}

#[test]
fn files_outside_every_tenant_stores_outside_values_and_raw_arns_are_refused() {
    let stray = "apiVersion: secretwire.dev/v1alpha1\nkind: Parameter\nmetadata:\n  name: /web/x\nspec: {}\n";
    let foreign = "apiVersion: secretwire.dev/v1alpha1\nkind: Parameter\nmetadata:\n  name: /payments/key\nspec:\n  sharedWith: [nobody]\n";
    let raw = GREEDY
        .replace(
            "secret: payments/prod-db",
            "valueFrom: arn:aws:secretsmanager:us-east-1:123456789012:secret:payments/prod-db-AbCdEf",
        )
        .replace(
            "secrets:\n",
            "secrets:\n        - { name: OWN, valueFrom: arn:aws:ssm:us-east-1:123456789012:parameter/web/db }\n",
        );
    let (d, _t, tenants) =
        repo(&[("stray.yaml", stray), ("teams/web/p.yaml", foreign), ("teams/web/api.yaml", &raw)], TENANTS);
    let l = load(d.path(), Some(&tenants));
    let got = located(d.path(), &l.refusals);
    assert!(
        got.iter()
            .any(|g| g
                .starts_with("stray.yaml:4:9: rule `paths`: Parameter//web/x: `stray.yaml` matches no tenant's paths")),
        "{got:#?}"
    );
    assert!(got.iter().any(|g| g.starts_with("teams/web/p.yaml:4:9: tenant `web`: rule `values`: Parameter//payments/key declares parameter `/payments/key`")), "{got:#?}");
    assert!(
        got.iter().any(|g| g.starts_with("teams/web/p.yaml:6:16: tenant `web`: rule `sharedWith`: no tenant `nobody`")),
        "{got:#?}"
    );
    assert!(
        got.iter().any(|g| g.contains("rule `values`: Service/web-greedy reads secret `payments/prod-db`")),
        "{got:#?}"
    );
    assert!(!got.iter().any(|g| g.contains("`/web/db`")), "the ARN of an allowed parameter is allowed: {got:#?}");
}

#[test]
fn without_tenants_nothing_is_refused_and_a_tenant_in_the_tree_is_an_error() {
    let (d, _t, _) = repo(&[("teams/web/api.yaml", GREEDY)], TENANTS);
    let l = load(d.path(), None);
    assert!(l.errors.is_empty() && l.refusals.is_empty());
    assert!(l.desired.services.contains_key("web-greedy"), "today's behaviour: one tenant");
    assert_eq!(l.desired.services["web-greedy"].origin.tenant, None);
    let (d, _t, tenants) = repo(&[("teams/web/tenant.yaml", TENANTS)], TENANTS);
    let l = load(d.path(), Some(&tenants));
    let got = located(d.path(), &l.errors);
    assert_eq!(got.len(), 2, "{got:#?}");
    assert!(
        got[0].starts_with("teams/web/tenant.yaml:4:7: a `Tenant` in the manifest tree widens nothing"),
        "{got:#?}"
    );
}

#[test]
fn a_bad_tenant_file_is_reported_whole_and_located() {
    let t = tempfile::tempdir().unwrap();
    let bad = "apiVersion: secretwire.dev/v1alpha1
kind: Tenant
metadata: { name: web }
spec:
  paths: [\"/abs/**\"]
  rolePrefix: \"web prefix\"
  managedPolicyArns: [AdministratorAccess]
---
apiVersion: secretwire.dev/v1alpha1
kind: Tenant
metadata: { name: web }
spec: { paths: [a], rolePrefix: w, bogus: 1 }
";
    fs::write(t.path().join("t.yaml"), bad).unwrap();
    let diags = Tenants::load(&t.path().join("t.yaml")).unwrap_err();
    let got: Vec<String> = diags.iter().map(|d| format!("{}:{}: {}", d.line, d.column, d.message)).collect();
    assert!(got.iter().any(|g| g.starts_with("5:11: path pattern `/abs/**` must be relative")), "{got:#?}");
    assert!(got.iter().any(|g| g.starts_with("6:15: rolePrefix: role name `web prefix`")), "{got:#?}");
    assert!(got.iter().any(|g| g.starts_with("7:23: `AdministratorAccess` is not a managed policy ARN")), "{got:#?}");
    assert!(got.iter().any(|g| g.contains("bogus")), "{got:#?}");
}
