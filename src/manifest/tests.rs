//! Loader and validation tests: every case asserts the exact location.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use super::*;
use crate::model::{Kind, ObjectKey, ValueRef};

pub(super) fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let p = d.path().join(name);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }
    d
}

/// `file:line:col: message-fragment` of each diagnostic, relative to the dir.
pub(super) fn located(dir: &Path, diags: &[Diagnostic]) -> Vec<String> {
    diags
        .iter()
        .map(|d| format!("{}:{}:{}: {}", d.path.strip_prefix(dir).unwrap().display(), d.line, d.column, d.message))
        .collect()
}

const SERVICE: &str = "apiVersion: secretwire.dev/v1alpha1
kind: Service
metadata:
  name: web
spec:
  cluster: prod
  containers:
    - name: web
      secrets:
        - name: DATABASE_PASSWORD
          parameter: /web/database-password
        - name: API_USER
          secret: web/api
          jsonKey: username
";

#[test]
fn a_valid_directory_loads_with_defaults() {
    let param = "apiVersion: secretwire.dev/v1alpha1\nkind: Parameter\nmetadata:\n  name: /web/database-password\nspec:\n  initialValue:\n    generate: { length: 32, excludePunctuation: true }\n";
    let d = dir_with(&[("a/web.yaml", SERVICE), ("b.yml", param), ("ignored.txt", "not yaml: [")]);
    let (desired, diags) = load_dir(d.path());
    assert!(diags.is_empty(), "{diags:?}");
    let web = &desired.services["web"];
    assert_eq!(web.service_name, "web");
    assert_eq!(web.family, "web");
    assert_eq!(web.execution_role.name, "web-execution");
    assert!(web.redeploy_on_change);
    assert_eq!(web.containers[0].secrets[0].value, ValueRef::Parameter { name: "/web/database-password".into() });
    assert!(
        matches!(&web.containers[0].secrets[1].value, ValueRef::Secret { json_key: Some(k), .. } if k == "username")
    );
    assert_eq!(desired.parameters["/web/database-password"].kind, crate::model::ParameterType::SecureString);
}

#[test]
fn schema_errors_are_located_and_all_reported() {
    let typo = SERVICE.replace("          jsonKey: username\n", "          jsonkey: username\n");
    let two_docs = "apiVersion: secretwire.dev/v1alpha1\nkind: Secret\nmetadata:\n  name: bad name!\nspec: {}\n---\napiVersion: secretwire.dev/v1alpha1\nkind: Nope\nmetadata:\n  name: x\nspec: {}\n---\napiVersion: secretwire.dev/v1alpha1\nkind: Secret\nmetadata:\n  name: fine\nspec:\n  description: ok\n";
    let d = dir_with(&[("1.yaml", &typo), ("2.yaml", two_docs)]);
    let (desired, diags) = load_dir(d.path());
    let got = located(d.path(), &diags);
    assert_eq!(got.len(), 3, "{got:#?}");
    assert!(got[0].starts_with("1.yaml:14:11: unknown field `jsonkey`"), "{got:#?}");
    assert!(got[1].starts_with("2.yaml:4:9: secret name `bad name!` contains ` `"), "{got:#?}");
    assert!(got[2].starts_with("2.yaml:8:7: unknown kind `Nope`"), "{got:#?}");
    assert!(desired.secrets.contains_key("fine"), "a later valid document still loads");
    assert!(desired.invalid.contains(&ObjectKey::new(Kind::Secret, "bad name!")));
    let shown = diags[0].to_string();
    assert!(
        shown.starts_with(&format!("{}:14:11: error: unknown field `jsonkey`", d.path().join("1.yaml").display())),
        "{shown}"
    );
    assert!(shown.contains("14 |           jsonkey: username"), "the offending line is shown: {shown}");
}

#[test]
fn semantic_errors_point_at_the_field() {
    let svc = "apiVersion: secretwire.dev/v1alpha1
kind: Service
metadata:
  name: api
spec:
  cluster: prod
  taskDefinition: { family: 'bad family' }
  containers:
    - name: app
      secrets:
        - name: A
          parameter: aws/reserved
        - name: A
          secret: s
          versionStage: AWSPREVIOUS
          versionId: v1
        - name: B
          parameter: /p
          jsonKey: k
        - name: C
          valueFrom: arn:aws:ssm:us-east-1:123456789012:parameter//double
        - name: D
          secret: s
          parameter: /p
      repositoryCredentials:
        parameter: /registry
";
    let d = dir_with(&[("s.yaml", svc)]);
    let (desired, diags) = load_dir(d.path());
    let got = located(d.path(), &diags);
    let want = [
        "s.yaml:7:29: family `bad family`",
        "s.yaml:12:22: parameter name `aws/reserved` has a hierarchy",
        "s.yaml:13:17: secrets: `A` is set twice",
        "s.yaml:16:22: pin either versionStage or versionId",
        "s.yaml:19:20: jsonKey, versionStage and versionId apply only",
        "s.yaml:21:22: valueFrom: `arn:aws:ssm:us-east-1:123456789012:parameter//double` has a doubled slash",
        "s.yaml:22:17: `D` needs exactly one of",
        "s.yaml:26:20: repositoryCredentials must be a Secrets Manager secret",
    ];
    assert_eq!(got.len(), want.len(), "{got:#?}");
    for (g, w) in got.iter().zip(want) {
        assert!(g.starts_with(w), "got {g}\nwant {w}");
    }
    assert!(desired.services.is_empty(), "an invalid object is never in the desired state");
    assert!(desired.invalid.contains(&ObjectKey::new(Kind::Service, "api")));
}

#[test]
fn duplicates_across_files_name_both_places() {
    let p = "apiVersion: secretwire.dev/v1alpha1\nkind: Parameter\nmetadata:\n  name: /dup\nspec: {}\n";
    let d = dir_with(&[("a.yaml", p), ("b.yaml", p)]);
    let (_, diags) = load_dir(d.path());
    assert_eq!(diags.len(), 1);
    let first = d.path().join("a.yaml");
    assert_eq!(diags[0].path, d.path().join("b.yaml"));
    assert_eq!((diags[0].line, diags[0].column), (4, 9));
    assert!(diags[0].message.contains(&format!("already declared at {}:4:9", first.display())), "{}", diags[0].message);
}

#[test]
fn parameter_name_rules() {
    use super::validate::check_parameter_name as c;
    for ok in ["/web/db", "plain", "/a.b-c_d"] {
        assert!(c(ok).is_ok(), "{ok}");
    }
    for bad in ["", "/aws/x", "ssm-x", "/SSM/x", "a/b", "/a//b", "/a/", "/a b", &format!("/{}", "a/".repeat(16) + "z")]
    {
        assert!(c(bad).is_err(), "{bad}");
    }
    use super::validate::check_secret_name as s;
    assert!(s("web/api+x=y.z@w-1_2").is_ok());
    assert!(s("web api").is_err() && s("").is_err() && s(&"a".repeat(513)).is_err());
}

#[test]
fn templates_must_exist_parse_and_hold_the_declared_containers() {
    let svc = |template: &str| {
        format!(
            "apiVersion: secretwire.dev/v1alpha1\nkind: Service\nmetadata:\n  name: web\nspec:\n  cluster: prod\n  taskDefinition:\n    template: {template}\n  containers:\n    - name: web\n"
        )
    };
    let d = dir_with(&[
        ("ok.yaml", &svc("td/web.json")),
        ("td/web.json", r#"{"family": "web", "containerDefinitions": [{"name": "web", "image": "httpd"}]}"#),
    ]);
    let (desired, diags) = load_dir(d.path());
    assert!(diags.is_empty(), "{diags:?}");
    assert_eq!(desired.services["web"].template.as_ref().unwrap()["containerDefinitions"][0]["image"], "httpd");

    let d = dir_with(&[("m.yaml", &svc("missing.json"))]);
    let (_, diags) = load_dir(d.path());
    assert_eq!((diags[0].line, diags[0].column), (8, 15));
    assert!(diags[0].message.contains("missing.json"));

    let d =
        dir_with(&[("b.yaml", &svc("t.yaml")), ("t.yaml", "containerDefinitions:\n  - name: other\n    image: x\n")]);
    let (_, diags) = load_dir(d.path());
    assert_eq!(located(d.path(), &diags), vec!["b.yaml:10:13: container `web` is not in the task definition template"]);
}

#[test]
fn validate_catches_what_would_fail_at_plan_time_and_takes_the_family_from_the_template() {
    let svc = |family: &str, extra: &str| {
        format!(
            "apiVersion: secretwire.dev/v1alpha1\nkind: Service\nmetadata:\n  name: web\nspec:\n  cluster: prod\n  taskDefinition:\n{family}    template: td.json\n  containers:\n    - name: web\n{extra}"
        )
    };
    let log_secrets = "      logSecrets:\n        - { name: splunk-token, secret: web/splunk }\n";
    let no_driver = r#"{"family": "storefront", "containerDefinitions": [{"name": "web", "image": "httpd"}]}"#;
    let d = dir_with(&[("m.yaml", &svc("", log_secrets)), ("td.json", no_driver)]);
    let (_, diags) = load_dir(d.path());
    assert_eq!(
        located(d.path(), &diags),
        vec![
            "m.yaml:10:13: container `web` has logSecrets but its template definition has no logConfiguration.logDriver"
        ]
    );

    let d = dir_with(&[("m.yaml", &svc("    family: web\n", "")), ("td.json", no_driver)]);
    let (_, diags) = load_dir(d.path());
    assert_eq!(
        located(d.path(), &diags),
        vec!["m.yaml:8:13: family `web` differs from the template's family `storefront`; name one family"]
    );

    // Without `family`, the template's family, not the manifest's name.
    let d = dir_with(&[("m.yaml", &svc("", "")), ("td.json", no_driver)]);
    let (desired, diags) = load_dir(d.path());
    assert!(diags.is_empty(), "{diags:?}");
    assert_eq!(
        (desired.services["web"].family.as_str(), desired.services["web"].family_from_running),
        ("storefront", false)
    );
    // Neither: the family of the revision the service runs (decided when planning).
    let d = dir_with(&[("m.yaml", SERVICE)]);
    let (desired, _) = load_dir(d.path());
    assert!(desired.services["web"].family_from_running);
}

#[test]
fn non_utf8_files_are_rejected_by_name_and_position() {
    let d = tempfile::tempdir().unwrap();
    fs::write(d.path().join("bin.yaml"), b"kind: x\nname: \xff\xfe\n").unwrap();
    let (_, diags) = load_dir(d.path());
    assert_eq!(located(d.path(), &diags), vec!["bin.yaml:2:7: file is not valid UTF-8"]);
}

#[test]
fn alias_bombs_and_deep_nesting_are_rejected_fast() {
    let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        bomb.push_str(&format!(
            "{}: &{} [*{}, *{}, *{}, *{}, *{}, *{}, *{}, *{}, *{}, *{}]\n",
            (b'a' + i) as char,
            (b'a' + i) as char,
            (b'a' + i - 1) as char,
            (b'a' + i - 1) as char,
            (b'a' + i - 1) as char,
            (b'a' + i - 1) as char,
            (b'a' + i - 1) as char,
            (b'a' + i - 1) as char,
            (b'a' + i - 1) as char,
            (b'a' + i - 1) as char,
            (b'a' + i - 1) as char,
            (b'a' + i - 1) as char
        ));
    }
    let deep = format!("apiVersion: {}{}", "[".repeat(10_000), "]".repeat(10_000));
    let d = dir_with(&[("bomb.yaml", &bomb), ("deep.yaml", &deep)]);
    let start = Instant::now();
    let (desired, diags) = load_dir(d.path());
    // Generous bound: the point is "not minutes or gigabytes"; speed goals live in `make bench`.
    assert!(start.elapsed() < Duration::from_secs(5), "{:?}", start.elapsed());
    assert_eq!(diags.len(), 2, "{diags:?}");
    assert!(diags.iter().all(|d| d.line > 0), "{diags:?}");
    assert!(desired.services.is_empty());
}

#[cfg(unix)]
#[test]
fn symlink_loops_are_reported_not_followed() {
    let d = dir_with(&[("ok.yaml", SERVICE)]);
    std::os::unix::fs::symlink(d.path(), d.path().join("loop")).unwrap();
    let (desired, diags) = load_dir(d.path());
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert!(diags[0].message.contains("symlink loop"));
    assert!(desired.services.contains_key("web"));
}

/// A small deterministic PRNG (xorshift64*), so a failing case can be replayed by seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[test]
fn mutated_manifests_never_panic_and_every_rejection_is_located() {
    // Hostile input: byte flips, YAML punctuation, deletions, duplications and
    // truncations of a valid multi-document manifest. The long run is `make fuzz`'s
    // job; this seeded sweep runs in `make test`.
    let base = format!(
        "{SERVICE}---\napiVersion: secretwire.dev/v1alpha1\nkind: Parameter\nmetadata:\n  name: /web/database-password\nspec:\n  initialValue: {{ generate: {{ length: 8 }} }}\n"
    );
    let tokens: &[&[u8]] = &[
        b":",
        b"-",
        b"&a",
        b"*a",
        b"!!binary",
        b"{",
        b"}",
        b"[",
        b"]",
        b"'",
        b"\"",
        b"\n",
        b"  ",
        b"\t",
        b"---\n",
        b"\xff",
        b"\0",
        b"#",
    ];
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("m.yaml");
    let mut rejected = 0;
    for seed in 1..=3000u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let mut bytes = base.as_bytes().to_vec();
        for _ in 0..=rng.below(4) {
            if bytes.is_empty() {
                break;
            }
            let at = rng.below(bytes.len());
            match rng.below(5) {
                0 => bytes[at] = rng.next() as u8,
                1 => {
                    let t = tokens[rng.below(tokens.len())];
                    bytes.splice(at..at, t.iter().copied());
                }
                2 => {
                    let end = (at + rng.below(20)).min(bytes.len());
                    bytes.drain(at..end);
                }
                3 => {
                    let end = (at + rng.below(40)).min(bytes.len());
                    let chunk = bytes[at..end].to_vec();
                    bytes.splice(at..at, chunk);
                }
                _ => bytes.truncate(at),
            }
        }
        fs::write(&file, &bytes).unwrap();
        let result = std::panic::catch_unwind(|| load_dir(dir.path()));
        let (_, diags) = result.unwrap_or_else(|_| panic!("the loader panicked on seed {seed}"));
        rejected += usize::from(!diags.is_empty());
        for d in &diags {
            assert_eq!(d.path, file, "seed {seed}: {d}");
            assert!(!d.message.is_empty(), "seed {seed}");
            assert!(d.line > 0 || d.column == 0, "seed {seed}: {d}");
        }
    }
    assert!(rejected > 1000, "the mutations must reach the validator's error paths: {rejected} rejected");
}

/// Property-based fuzzing (proptest) of the loader. `make test` runs the
/// default number of cases; `make fuzz` sets `PROPTEST_CASES` high. A failure
/// is shrunk to a minimal input and replayable from proptest's seed file.
mod fuzz {
    use proptest::prelude::*;

    use super::*;

    /// Keys the schema knows, so generated documents reach deep into validation.
    const KEYS: &[&str] = &[
        "apiVersion",
        "kind",
        "metadata",
        "name",
        "spec",
        "cluster",
        "serviceName",
        "taskDefinition",
        "family",
        "template",
        "executionRole",
        "taskRole",
        "roleName",
        "adopt",
        "managedPolicyArns",
        "statements",
        "effect",
        "actions",
        "resources",
        "conditions",
        "containers",
        "secrets",
        "logSecrets",
        "repositoryCredentials",
        "parameter",
        "secret",
        "valueFrom",
        "jsonKey",
        "versionStage",
        "versionId",
        "type",
        "kmsKeyId",
        "description",
        "initialValue",
        "generate",
        "length",
        "fromEnv",
        "json",
        "tags",
        "redeployOnChange",
        "excludePunctuation",
        "sid",
        "x",
    ];
    const WORDS: &[&str] = &[
        "secretwire.dev/v1alpha1",
        "Service",
        "Parameter",
        "Secret",
        "SecureString",
        "String",
        "web",
        "/web/db",
        "web/api",
        "prod",
        "AWSPREVIOUS",
        "AWSCURRENT",
        "alias/web",
        "Allow",
        "Deny",
        "s3:GetObject",
        "*",
        "arn:aws:ssm:us-east-1:123456789012:parameter/web/db",
        "arn:aws:secretsmanager:us-east-1:1:secret:x",
        "../../etc/passwd",
        "taskdefs/web.json",
        "",
        "\u{0}",
        "ü",
        "-1",
        "99999999999999999999",
    ];

    fn tree() -> impl Strategy<Value = serde_json::Value> {
        use serde_json::Value;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            prop::sample::select(WORDS).prop_map(Value::from),
            ".{0,12}".prop_map(Value::from),
        ];
        leaf.prop_recursive(5, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec((prop::sample::select(KEYS), inner), 0..6)
                    .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
            ]
        })
    }

    /// A document shaped like a manifest (known kind and apiVersion, some of the
    /// time), its body generated: JSON is YAML, so it goes through the real loader.
    fn object() -> impl Strategy<Value = serde_json::Value> {
        prop::collection::vec((prop::sample::select(KEYS), tree()), 0..8)
            .prop_map(|kv| serde_json::Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect()))
    }

    fn document() -> impl Strategy<Value = String> {
        let metadata = prop_oneof![
            3 => prop::sample::select(WORDS).prop_map(|n| serde_json::json!({"name": n})),
            1 => tree(),
        ];
        let kinds = prop::sample::select(&["Service", "Parameter", "Secret", "Nope"][..]);
        (kinds, prop::bool::weighted(0.9), metadata, object()).prop_map(|(kind, good_api, metadata, spec)| {
            let api = if good_api { "secretwire.dev/v1alpha1" } else { "v9" };
            serde_json::json!({"apiVersion": api, "kind": kind, "metadata": metadata, "spec": spec}).to_string()
        })
    }

    /// Mostly printable ASCII, sometimes any byte (invalid UTF-8 is one rejection only).
    fn byte() -> impl Strategy<Value = u8> {
        prop_oneof![20 => 0x20u8..0x7f, 2 => Just(b'\n'), 1 => any::<u8>()]
    }

    fn assert_located(dir: &Path, file: &Path) -> Result<(), TestCaseError> {
        let (_, diags) =
            std::panic::catch_unwind(|| load_dir(dir)).map_err(|_| TestCaseError::fail("the loader panicked"))?;
        for d in &diags {
            prop_assert_eq!(&d.path, file, "{}", d);
            prop_assert!(!d.message.is_empty());
            prop_assert!(d.line > 0 || d.column == 0, "{}", d);
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn generated_documents_never_panic_and_every_rejection_is_located(
            docs in prop::collection::vec(document(), 1..4)
        ) {
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join("m.yaml");
            fs::write(&file, docs.join("\n---\n")).unwrap();
            assert_located(dir.path(), &file)?;
        }

        #[test]
        fn mutated_valid_manifests_never_panic_and_every_rejection_is_located(
            edits in prop::collection::vec((0.0f64..1.0, 0usize..6, prop::collection::vec(byte(), 0..8)), 1..6)
        ) {
            let mut bytes = SERVICE.as_bytes().to_vec();
            for (at, kind, data) in edits {
                let at = ((bytes.len() as f64) * at) as usize;
                match kind {
                    0 => bytes.splice(at..at, data.iter().copied()).for_each(drop),
                    1 => bytes.drain(at..(at + data.len()).min(bytes.len())).for_each(drop),
                    2 => bytes.truncate(at),
                    3 => {
                        let chunk = bytes[at..(at + 8 * data.len()).min(bytes.len())].to_vec();
                        bytes.splice(at..at, chunk).for_each(drop);
                    }
                    4 => bytes.splice(at..at, b": - [{&*!'\"#\n\t".iter().copied().skip(data.len())).for_each(drop),
                    _ => {
                        if let Some(b) = bytes.get_mut(at) {
                            *b = data.first().copied().unwrap_or(b' ');
                        }
                    }
                }
            }
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join("m.yaml");
            fs::write(&file, &bytes).unwrap();
            assert_located(dir.path(), &file)?;
        }
    }
}

#[test]
fn a_rotation_that_aws_would_refuse_is_a_located_error_before_any_call() {
    let text = "apiVersion: secretwire.dev/v1alpha1
kind: Secret
metadata: { name: a }
spec:
  rotation: { lambdaArn: 'arn:aws:lambda:us-east-1:123456789012:function:f', schedule: 'rate(2 hours)' }
---
apiVersion: secretwire.dev/v1alpha1
kind: Secret
metadata: { name: b }
spec:
  rotation: { enabled: false, schedule: 'rate(1 day)' }
---
apiVersion: secretwire.dev/v1alpha1
kind: Secret
metadata: { name: c }
spec:
  rotation:
    lambdaArn: 'arn:aws:lambda:us-east-1:123456789012:function:f'
    schedule: 'cron(0 22 * * ? *)'
    duration: 4h
---
apiVersion: secretwire.dev/v1alpha1
kind: Secret
metadata: { name: d }
spec:
  rotation: { schedule: 'rate(1 day)' }
";
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("s.yaml"), text).unwrap();
    let (d, diags) = crate::manifest::load_dir(dir.path());
    let shown: Vec<String> = diags.iter().map(|d| format!("{}:{} {}", d.line, d.column, d.message)).collect();
    assert_eq!(diags.len(), 4, "{shown:#?}");
    assert!(shown[0].starts_with("5:") && shown[0].contains("every 4 hours"), "{shown:#?}");
    assert!(shown[1].starts_with("11:") && shown[1].contains("takes no other field"), "{shown:#?}");
    assert!(shown[2].starts_with("20:") && shown[2].contains("next UTC day"), "{shown:#?}");
    assert!(shown[3].contains("lambdaArn"), "{shown:#?}");
    assert!(d.secrets.is_empty(), "nothing is applied for an invalid object");
}
