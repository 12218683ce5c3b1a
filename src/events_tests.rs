use std::collections::BTreeMap;

use serde_json::json;

use super::*;

fn scope() -> Scope {
    Scope::new("us-west-2", "012345678901")
}

fn envelope(detail_type: &str, source: &str, resources: Value, detail: Value) -> String {
    json!({
        "version": "0", "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718", "detail-type": detail_type, "source": source,
        "account": "012345678901", "time": "2024-02-06T16:43:48Z", "region": "us-west-2",
        "resources": resources, "detail": detail
    })
    .to_string()
}

const ARN: &str = "arn:aws:secretsmanager:us-west-2:012345678901:secret:mySecret-a1b2c3";

fn secret_change(body: &str) -> (String, String) {
    match parse(body, &scope()) {
        Parsed::Change(ValueChange { value: ChangedValue::Secret(id), at, cause, .. }) => {
            assert_eq!(at, Some(1707237828.0));
            (id, cause)
        }
        other => panic!("expected a secret change, got {other:?}"),
    }
}

#[test]
fn secret_label_updated_to_awscurrent_is_a_change() {
    let body = envelope(
        "Secret Label Updated",
        "aws.secretsmanager",
        json!([ARN]),
        json!({"name": "mySecret", "labelUpdated": "AWSCURRENT", "versionId": "a1b2c3d4-5678-90ab-cdef-EXAMPLE11111"}),
    );
    assert_eq!(secret_change(&body), (ARN.to_string(), "Secret Label Updated".into()));
    assert_eq!(labels(&body), ["AWSCURRENT", "AWSPREVIOUS"], "AWSPREVIOUS moves with AWSCURRENT");
    let other_label = body.replace("\"AWSCURRENT\"", "\"PROD\"");
    assert_eq!(labels(&other_label), ["PROD"], "a custom label moved: its readers read something new");
    let pending = body.replace("\"AWSCURRENT\"", "\"AWSPENDING\"");
    assert!(matches!(parse(&pending, &scope()), Parsed::Ignored(_)), "no task reads AWSPENDING");
}

/// The labels a secret change moved.
fn labels(body: &str) -> Vec<String> {
    match parse(body, &scope()) {
        Parsed::Change(c) => c.labels.into_iter().collect(),
        other => panic!("expected a change, got {other:?}"),
    }
}

#[test]
fn rotation_succeeded_service_event() {
    let body = envelope(
        "AWS Service Event via CloudTrail",
        "aws.secretsmanager",
        json!([]),
        json!({
            "eventVersion": "1.05", "userIdentity": {"accountId": "012345678901", "invokedBy": "secretsmanager.amazonaws.com"},
            "eventTime": "2024-02-06T16:43:48Z", "eventSource": "secretsmanager.amazonaws.com", "eventName": "RotationSucceeded",
            "awsRegion": "us-west-2", "requestParameters": null, "responseElements": null,
            "additionalEventData": {"SecretId": ARN}, "eventType": "AwsServiceEvent", "recipientAccountId": "012345678901"
        }),
    );
    assert_eq!(secret_change(&body), (ARN.to_string(), "RotationSucceeded".into()));
    let started = body.replace("RotationSucceeded", "RotationStarted");
    assert!(matches!(parse(&started, &scope()), Parsed::Ignored(_)));
}

fn api_call(event_name: &str, request: Value, response: Value) -> String {
    envelope(
        "AWS API Call via CloudTrail",
        "aws.secretsmanager",
        json!([]),
        json!({"eventSource": "secretsmanager.amazonaws.com", "eventName": event_name, "awsRegion": "us-west-2",
               "requestParameters": request, "responseElements": response}),
    )
}

#[test]
fn api_calls_that_set_awscurrent() {
    // PutSecretValue without stages: the new version becomes AWSCURRENT.
    let put = api_call(
        "PutSecretValue",
        json!({"secretId": "mySecret", "clientRequestToken": "t"}),
        json!({"arn": ARN, "versionId": "v2"}),
    );
    assert_eq!(secret_change(&put).0, ARN);
    // Legacy `aRN` (before February 2024).
    let legacy = api_call("PutSecretValue", json!({"secretId": "mySecret"}), json!({"aRN": ARN}));
    assert_eq!(secret_change(&legacy).0, ARN);
    // secretId only, as a name.
    let by_name = api_call("PutSecretValue", json!({"secretId": "mySecret"}), Value::Null);
    assert_eq!(secret_change(&by_name).0, "mySecret");
    // UpdateSecretVersionStage moving AWSCURRENT.
    let stage = api_call(
        "UpdateSecretVersionStage",
        json!({"secretId": ARN, "versionStage": "AWSCURRENT", "moveToVersionId": "v3", "removeFromVersionId": "v2"}),
        json!({"arn": ARN}),
    );
    assert_eq!(secret_change(&stage).0, ARN);
    // UpdateSecret with a new value makes a version.
    let update = api_call("UpdateSecret", json!({"secretId": ARN}), json!({"arn": ARN, "versionId": "v4"}));
    assert_eq!(secret_change(&update).0, ARN);
}

#[test]
fn api_calls_that_do_not_change_what_tasks_read_are_ignored() {
    let pending =
        api_call("PutSecretValue", json!({"secretId": ARN, "versionStages": ["AWSPENDING"]}), json!({"arn": ARN}));
    assert!(matches!(parse(&pending, &scope()), Parsed::Ignored(_)), "a rotation's AWSPENDING write");
    let describe_only = api_call("UpdateSecret", json!({"secretId": ARN, "description": "d"}), json!({"arn": ARN}));
    assert!(matches!(parse(&describe_only, &scope()), Parsed::Ignored(_)));
    let other_stage = api_call(
        "UpdateSecretVersionStage",
        json!({"secretId": ARN, "versionStage": "PROD", "moveToVersionId": "v"}),
        json!({}),
    );
    assert_eq!(labels(&other_stage), ["PROD"], "moving a custom label changes what its readers read");
    let removed = api_call(
        "UpdateSecretVersionStage",
        json!({"secretId": ARN, "versionStage": "PROD", "removeFromVersionId": "v"}),
        json!({}),
    );
    assert!(matches!(parse(&removed, &scope()), Parsed::Ignored(_)), "a label only removed points nowhere new");
    let tag = api_call("TagResource", json!({"secretId": ARN}), json!({}));
    assert!(matches!(parse(&tag, &scope()), Parsed::Ignored(_)));
    let mut failed: Value =
        serde_json::from_str(&api_call("PutSecretValue", json!({"secretId": ARN}), json!(null))).unwrap();
    failed["detail"]["errorCode"] = json!("AccessDenied");
    assert!(matches!(parse(&failed.to_string(), &scope()), Parsed::Ignored(_)));
}

#[test]
fn parameter_store_changes() {
    for op in ["Create", "Update"] {
        let body = envelope(
            "Parameter Store Change",
            "aws.ssm",
            json!(["arn:aws:ssm:us-west-2:012345678901:parameter/web/db"]),
            json!({"operation": op, "name": "/web/db", "type": "SecureString", "description": "Sample"}),
        );
        match parse(&body, &scope()) {
            Parsed::Change(c) => assert_eq!(c.value, ChangedValue::Parameter("/web/db".into())),
            other => panic!("{op}: {other:?}"),
        }
    }
    let delete =
        envelope("Parameter Store Change", "aws.ssm", json!([]), json!({"operation": "Delete", "name": "/web/db"}));
    assert!(matches!(parse(&delete, &scope()), Parsed::Ignored(_)));
    // A label moves no value a parameter reference reads (they read the latest version).
    let label = envelope(
        "Parameter Store Change",
        "aws.ssm",
        json!([]),
        json!({"operation": "LabelParameterVersion", "name": "/web/db", "type": "SecureString"}),
    );
    assert!(matches!(parse(&label, &scope()), Parsed::Ignored(_)));
    // An event for a call that failed changes nothing.
    let failed = envelope(
        "Parameter Store Change",
        "aws.ssm",
        json!(["arn:aws:ssm:us-west-2:012345678901:parameter/web/db"]),
        json!({"operation": "Update", "name": "/web/db", "type": "SecureString",
               "exception": "ParameterMaxVersionLimitExceeded"}),
    );
    assert!(matches!(parse(&failed, &scope()), Parsed::Ignored(r) if r.contains("failed")));
}

#[test]
fn hostile_and_foreign_bodies_are_counted_not_acted_on() {
    for body in [
        "",
        "garbage",
        "[]",
        "42",
        r#"{"source": 1}"#,
        r#"{"source":"aws.ssm","detail-type":"Parameter Store Change","detail":"x"}"#,
    ] {
        assert!(matches!(parse(body, &scope()), Parsed::Malformed(_)), "{body:?}");
    }
    let huge = format!("{{\"pad\": \"{}\"}}", "x".repeat(MAX_BODY));
    assert!(matches!(parse(&huge, &scope()), Parsed::Malformed(_)));
    let other_account =
        envelope("Secret Label Updated", "aws.secretsmanager", json!([ARN]), json!({"labelUpdated": "AWSCURRENT"}))
            .replace("\"account\":\"012345678901\"", "\"account\":\"999999999999\"");
    assert!(matches!(parse(&other_account, &scope()), Parsed::Ignored(r) if r.contains("999999999999")));
    let other_region =
        envelope("Parameter Store Change", "aws.ssm", json!([]), json!({"operation": "Update", "name": "/x"}))
            .replace("\"region\":\"us-west-2\"", "\"region\":\"eu-west-1\"");
    assert!(matches!(parse(&other_region, &scope()), Parsed::Ignored(_)));
    let wrong_types = envelope("Parameter Store Change", "aws.ssm", json!([]), json!({"operation": 5, "name": ["x"]}));
    assert!(matches!(parse(&wrong_types, &scope()), Parsed::Ignored(_) | Parsed::Malformed(_)));
    let unknown = envelope("EC2 Instance State-change Notification", "aws.ec2", json!([]), json!({}));
    assert!(matches!(parse(&unknown, &scope()), Parsed::Ignored(_)));
}

const MANIFESTS: &str = "apiVersion: secretwire.dev/v1alpha1
kind: Service
metadata: { name: web }
spec:
  cluster: prod
  containers:
    - name: web
      secrets:
        - { name: A, secret: web/api }
        - { name: B, parameter: /shared/db }
        - { name: C, secret: web/pinned, versionStage: AWSPREVIOUS }
        - { name: D, secret: web/current, versionStage: AWSCURRENT }
---
apiVersion: secretwire.dev/v1alpha1
kind: Service
metadata: { name: worker }
spec:
  cluster: prod
  containers:
    - name: worker
      secrets:
        - { name: B, parameter: /shared/db }
        - { name: E, valueFrom: 'arn:aws:secretsmanager:us-west-2:012345678901:secret:legacy-AbCdEf:user::' }
        - { name: F, secret: web/custom, versionStage: PROD }
        - { name: G, secret: web/fixed, versionId: a1b2c3d4-5678-90ab-cdef-EXAMPLE11111 }
---
apiVersion: secretwire.dev/v1alpha1
kind: Service
metadata: { name: batch }
spec:
  cluster: prod
  redeployOnChange: false
  containers:
    - name: batch
      secrets:
        - { name: A, secret: web/api }
";

#[test]
fn the_index_maps_a_change_to_the_readers_of_the_labels_it_moved() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("m.yaml"), MANIFESTS).unwrap();
    let (d, diags) = crate::manifest::load_dir(dir.path());
    assert!(diags.is_empty(), "{diags:?}");
    let arns: BTreeMap<String, String> =
        [("web/api".to_string(), "arn:aws:secretsmanager:us-west-2:012345678901:secret:web/api-XyZ123".to_string())]
            .into();
    let ix = ValueIndex::build(&d, &arns);
    let set = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    let moved = |id: &str, labels: &[&str]| {
        ix.services_for(&ValueChange {
            value: ChangedValue::Secret(id.into()),
            at: None,
            cause: String::new(),
            labels: labels.iter().map(|l| l.to_string()).collect(),
        })
    };
    let rotated = |id: &str| moved(id, &["AWSCURRENT", "AWSPREVIOUS"]);
    let parameter = |name: &str| {
        ix.services_for(&ValueChange {
            value: ChangedValue::Parameter(name.into()),
            at: None,
            cause: String::new(),
            labels: BTreeSet::new(),
        })
    };
    assert_eq!(rotated("web/api"), set(&["web"]), "redeployOnChange: false excludes batch");
    assert_eq!(rotated("arn:aws:secretsmanager:us-west-2:012345678901:secret:web/api-XyZ123"), set(&["web"]));
    assert_eq!(rotated("web/pinned"), set(&["web"]), "AWSPREVIOUS moves at every rotation");
    assert_eq!(moved("web/pinned", &["PROD"]), set(&[]), "another label moved: not what C reads");
    assert_eq!(moved("web/custom", &["PROD"]), set(&["worker"]), "a custom label pin follows its label");
    assert_eq!(rotated("web/custom"), set(&[]));
    assert_eq!(rotated("web/fixed"), set(&[]), "a versionId pin is fixed");
    assert_eq!(rotated("web/current"), set(&["web"]), "pinned to AWSCURRENT still follows rotations");
    assert_eq!(rotated("arn:aws:secretsmanager:us-west-2:012345678901:secret:legacy-AbCdEf"), set(&["worker"]));
    assert_eq!(rotated("arn:aws:secretsmanager:us-west-2:012345678901:secret:unrelated-AbCdEf"), set(&[]));
    assert_eq!(parameter("/shared/db"), set(&["web", "worker"]));
    assert_eq!(parameter("shared/db"), set(&["web", "worker"]));
}

#[test]
fn timestamps_round_trip() {
    assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0.0));
    assert_eq!(parse_rfc3339("2024-02-06T16:43:48Z"), Some(1707237828.0));
    assert_eq!(parse_rfc3339("2024-02-06T17:43:48+01:00"), Some(1707237828.0));
    assert_eq!(parse_rfc3339("2024-02-06T16:43:48.250Z"), Some(1707237828.25));
    assert_eq!(parse_rfc3339("not a time"), None);
    assert_eq!(parse_rfc3339("2024-13-06T16:43:48Z"), None);
    assert_eq!(format_rfc3339(1707237828.7), "2024-02-06T16:43:48Z");
    assert_eq!(format_rfc3339(951782400.0), "2000-02-29T00:00:00Z");
}

/// An event stamped 16:43:48 (whole second) for a value changed at 16:43:48.250.
const AT: f64 = 1707237828.0;

#[test]
fn a_deployment_a_full_second_after_the_event_serves_it_without_reading_anything() {
    assert!(started_after(AT + 1.0, AT));
    assert!(serves_event(AT + 1.0, AT, None));
    assert!(!needs_last_change(AT + 1.0, AT));
    // Before the event's second: surely older than the change, nothing to read.
    assert!(!serves_event(AT - 0.001, AT, Some(AT - 0.5)));
    assert!(!needs_last_change(AT - 0.001, AT));
}

#[test]
fn within_the_event_second_the_precise_change_time_decides() {
    let changed = AT + 0.25;
    for start in [AT, AT + 0.1, AT + 0.25] {
        assert!(needs_last_change(start, AT));
        assert!(!serves_event(start, AT, Some(changed)), "started {start} at or before the change");
    }
    for start in [AT + 0.251, AT + 0.9] {
        assert!(needs_last_change(start, AT));
        assert!(serves_event(start, AT, Some(changed)), "started {start} after the change");
        // Not read, or unreadable: redeploy rather than guess.
        assert!(!serves_event(start, AT, None));
    }
}

#[test]
fn a_last_change_time_that_cannot_be_the_announced_change_decides_nothing() {
    let start = AT + 0.9;
    // Whole seconds (moto's Secrets Manager): any instant of that second.
    assert!(!serves_event(start, AT, Some(AT)));
    // Older than the event's second: this metadata was not moved by the change.
    assert!(!serves_event(start, AT, Some(AT - 0.5)));
    // A later change than the event's: the deployment is older than it.
    assert!(!serves_event(start, AT, Some(AT + 1.2)));
}

#[test]
fn precise_change_times_are_compared_as_they_are_whole_seconds_with_a_second_of_doubt() {
    assert!(started_after(AT + 0.251, AT + 0.25));
    assert!(!started_after(AT + 0.25, AT + 0.25));
    assert!(!started_after(AT + 0.999, AT));
    assert!(started_after(AT + 1.0, AT));
}

/// Property-based fuzzing of the event parser: any JSON, any bytes.
mod fuzz {
    use proptest::prelude::*;

    use super::*;

    fn json() -> impl Strategy<Value = serde_json::Value> {
        use serde_json::Value;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<f64>().prop_map(|f| serde_json::json!(f)),
            prop::sample::select(
                &[
                    "aws.secretsmanager",
                    "aws.ssm",
                    "RotationSucceeded",
                    "PutSecretValue",
                    "Update",
                    "123456789012",
                    "999999999999",
                    "us-east-1",
                    "eu-west-1",
                    "2026-11-22T10:00:00Z",
                    "arn:aws:secretsmanager:us-east-1:123456789012:secret:web/api-AbCdEf",
                    "/web/db",
                ][..]
            )
            .prop_map(Value::from),
            ".{0,16}".prop_map(Value::from),
        ];
        let keys = &[
            "source",
            "detail-type",
            "detail",
            "account",
            "region",
            "time",
            "id",
            "eventName",
            "eventSource",
            "requestParameters",
            "responseElements",
            "additionalEventData",
            "SecretId",
            "secretId",
            "name",
            "operation",
            "type",
            "awsRegion",
            "recipientAccountId",
            "userIdentity",
            "arn",
        ][..];
        leaf.prop_recursive(5, 64, 8, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec((prop::sample::select(keys), inner), 0..8)
                    .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn any_json_body_parses_without_panic_and_other_accounts_never_change_anything(body in json()) {
            let scope = Scope::new("us-east-1", "123456789012");
            let text = body.to_string();
            if let Parsed::Change(c) = parse(&text, &scope) {
                // A change is only ever for this account and region.
                prop_assert!(!c.value.to_string().contains("999999999999"), "{}", c.value);
                prop_assert!(!c.value.to_string().contains("eu-west-1"), "{}", c.value);
            }
        }

        #[test]
        fn any_bytes_parse_without_panic(body in ".{0,300}") {
            let scope = Scope::new("us-east-1", "123456789012");
            let _ = parse(&body, &scope);
        }
    }
}

/// The corpus of documented event shapes (`tests/fixtures/aws/events/`): each
/// has its expected outcome, and every file is covered.
#[test]
fn every_event_of_the_corpus_has_its_expected_outcome() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/aws");
    let expected: BTreeMap<String, Value> =
        serde_json::from_str(&std::fs::read_to_string(root.join("events.expected.json")).unwrap()).unwrap();
    let scope = Scope::new("us-west-2", "012345678901");
    let mut seen = BTreeSet::new();
    for entry in std::fs::read_dir(root.join("events")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let want = expected.get(&name).unwrap_or_else(|| panic!("{name} has no expected outcome"));
        let got = parse(&std::fs::read_to_string(&path).unwrap(), &scope);
        match (&got, want.get("change")) {
            (Parsed::Change(c), Some(value)) => {
                assert_eq!(&Value::String(c.value.to_string()), value, "{name}");
                let labels: Vec<&str> = c.labels.iter().map(String::as_str).collect();
                let want_labels: Vec<&str> =
                    want["labels"].as_array().unwrap().iter().map(|l| l.as_str().unwrap()).collect();
                assert_eq!(labels, want_labels, "{name}");
                assert_eq!(c.at, Some(1707237828.0), "{name}: the event's time");
            }
            (Parsed::Deployment(d), None) if want.get("deployment").is_some() => {
                assert_eq!(Some(d.deployment_id.as_str()), want["deployment"].as_str(), "{name}");
                assert_eq!(format!("{:?}", d.state), want["state"].as_str().unwrap(), "{name}");
                assert_eq!(d.is_rollback(), want["rollback"] == true, "{name}");
                assert_eq!(d.service_arn, "arn:aws:ecs:us-west-2:012345678901:service/default/servicetest");
                assert_eq!(d.at, Some(1707237820.0), "{name}: detail.updatedAt");
            }
            (Parsed::Ignored(_), None) if want["ignored"] == true => {}
            (Parsed::Malformed(_), None) if want["malformed"] == true => {}
            _ => panic!("{name}: expected {want}, got {got:?}"),
        }
        seen.insert(name);
    }
    assert_eq!(seen.len(), expected.len(), "every expected outcome has its event");
    assert!(seen.len() >= 20, "the corpus holds at least 20 events");
}

/// A parameter named `/app/token` in the controller's account and in a
/// Target's: an event from the Target names it by its ARN there and
/// reaches only that account's readers; an account with no Target is ignored.
#[test]
fn a_targets_change_reaches_only_the_readers_of_that_accounts_value() {
    let manifests = "apiVersion: secretwire.dev/v1alpha1
kind: Target
metadata: { name: shared }
spec: { account: \"222222222222\", region: us-west-2, roleArn: \"arn:aws:iam::222222222222:role/secretwire\" }
---
apiVersion: secretwire.dev/v1alpha1
kind: Service
metadata: { name: home-app }
spec:
  cluster: prod
  containers: [{ name: app, secrets: [{ name: T, parameter: /app/token }] }]
---
apiVersion: secretwire.dev/v1alpha1
kind: Service
metadata: { name: shared-app }
spec:
  target: shared
  cluster: prod
  serviceName: app
  containers: [{ name: app, secrets: [{ name: T, parameter: /app/token }] }]
";
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("m.yaml"), manifests).unwrap();
    let (d, diags) = crate::manifest::load_dir(dir.path());
    assert!(diags.is_empty(), "{diags:?}");
    let shared = Scope::new("us-west-2", "222222222222");
    let ix = ValueIndex::build_in(&d, &BTreeMap::new(), &[("shared".to_string(), shared.clone())].into());
    let scopes = [scope(), shared];
    let from = |account: &str| {
        let body = envelope(
            "Parameter Store Change",
            "aws.ssm",
            json!([]),
            json!({"operation": "Update", "name": "/app/token"}),
        )
        .replace("012345678901", account);
        read_from(&body, &scopes).parsed
    };
    let readers = |p: Parsed| match p {
        Parsed::Change(c) => ix.services_for(&c),
        other => panic!("expected a change, got {other:?}"),
    };
    let set = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    match from("222222222222") {
        Parsed::Change(ValueChange { value: ChangedValue::Parameter(p), .. }) => {
            assert_eq!(p, "arn:aws:ssm:us-west-2:222222222222:parameter/app/token")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(readers(from("222222222222")), set(&["shared-app"]));
    assert_eq!(readers(from("012345678901")), set(&["home-app"]));
    assert!(matches!(from("999999999999"), Parsed::Ignored(_)));
}
