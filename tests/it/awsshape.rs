//! The AWS-shape mode of the test proxy: where moto answers differently from
//! AWS, the answer secretwire gets is rewritten to what AWS documents, one
//! switch per behaviour. `SECRETWIRE_AWS_SHAPE=1` puts every integration test
//! behind it (`make test` runs the suite once so); a test's own reads go to
//! moto directly, so they see the truth, not the shaped answer.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Which behaviours are shaped. Each cites the documentation it follows.
#[derive(Debug, Clone)]
pub struct Shape {
    /// "ListSecrets is eventually consistent ... might not reflect changes
    /// from the last five minutes" (Secrets Manager API reference, ListSecrets):
    /// a secret created through the proxy is left out of ListSecrets for this long.
    pub list_secrets_lag: Option<Duration>,
    /// ECS stores task definitions normalised (RegisterTaskDefinition reference:
    /// task `cpu`/`memory` strings such as "1 vcpu" / "2 GB" are "converted to an
    /// integer ... when the task definition is registered"; HealthCheck: interval
    /// 30, timeout 5, retries 3 by default): Register/DescribeTaskDefinition answers say so.
    pub normalised_task_definitions: bool,
    /// ECS answers `service.taskDefinition` and `deployments[].taskDefinition`
    /// as full ARNs (DescribeServices reference, Service object); moto echoes `web:2`.
    pub full_task_definition_arns: bool,
    /// IAM returns policy documents URL-encoded (RFC 3986) in GetRole,
    /// GetRolePolicy and GetAccountAuthorizationDetails (IAM API reference,
    /// Role.AssumeRolePolicyDocument, GetRolePolicy.PolicyDocument); moto returns JSON.
    pub url_encoded_iam_documents: bool,
    /// DescribeParameters "might return an empty page ... with a NextToken"
    /// (Systems Manager API reference: "the service returns ... fewer than
    /// MaxResults, possibly zero, with a NextToken"): the first page of every
    /// listing is empty and points at the real one.
    pub empty_first_parameter_page: bool,
    /// Secrets Manager dates carry milliseconds (DescribeSecret
    /// `LastChangedDate` is a timestamp); moto's are whole seconds. A change
    /// made through the proxy is answered with the instant it was forwarded
    /// when moto's whole second agrees with it.
    pub millisecond_secret_dates: bool,
    /// A new ECS deployment is IN_PROGRESS until its tasks are running and
    /// healthy, then COMPLETED (DescribeServices reference, Deployment
    /// `rolloutState`); moto reports COMPLETED at once. A deployment younger
    /// than this is answered IN_PROGRESS with no running tasks.
    pub rollout_duration: Option<Duration>,
    /// A new task definition starts a new deployment (UpdateService reference:
    /// "a new deployment is triggered" when the task definition changes; the
    /// service's `deployments` gain a PRIMARY with a new id). moto keeps the
    /// old deployment and its id, so the proxy asks moto for a new one.
    pub new_deployment_on_update: bool,
    /// Secrets Manager rotation configuration as AWS keeps it. moto 5.2.5
    /// cannot serve it: RotateSecret invokes the function (a container
    /// engine), keeps only `AutomaticallyAfterDays`, and leaves an AWSPENDING
    /// version behind with `RotateImmediately: false`. So RotateSecret and
    /// CancelRotateSecret are answered here, and DescribeSecret/ListSecrets
    /// carry `RotationEnabled`, `RotationLambdaARN` and `RotationRules` as
    /// the API reference documents them (RotationRulesType: `ScheduleExpression`
    /// and `Duration` as set, `AutomaticallyAfterDays` "calculated from the
    /// rotation schedule"; RotateSecret: `RotateImmediately` defaults to true,
    /// counted here as a rotation started).
    pub rotation: bool,
}

/// How the deployments of one service go from now on (tests drive rollouts:
/// moto never fails one). DescribeServices answers are rewritten as AWS
/// documents them, and the deployment's stopped tasks are answered by
/// ListTasks (`startedBy` = the deployment id) and DescribeTasks.
#[derive(Debug, Clone, PartialEq)]
pub enum Script {
    /// FAILED, "ECS deployment circuit breaker: tasks failed to start.", with
    /// stopped tasks carrying this reason.
    Fail(String),
    /// FAILED, and the circuit breaker rolls back: a new PRIMARY whose reason
    /// is "ECS deployment circuit breaker: rolling back to deploymentId ...".
    RollBack(String),
    /// IN_PROGRESS for ever, no task running.
    Hang,
}

/// The reason ECS gives a deployment the circuit breaker failed.
pub const BREAKER_FAILED: &str = "ECS deployment circuit breaker: tasks failed to start.";

impl Shape {
    /// Everything AWS does that moto does not.
    pub fn aws() -> Self {
        Self {
            list_secrets_lag: Some(Duration::from_secs(300)),
            normalised_task_definitions: true,
            full_task_definition_arns: true,
            url_encoded_iam_documents: true,
            empty_first_parameter_page: true,
            millisecond_secret_dates: true,
            rollout_duration: Some(Duration::from_secs(2)),
            new_deployment_on_update: true,
            rotation: true,
        }
    }

    /// Nothing shaped but what rollout scripts need (a new deployment per update).
    pub fn scripted_only() -> Self {
        Self {
            list_secrets_lag: None,
            normalised_task_definitions: false,
            full_task_definition_arns: false,
            url_encoded_iam_documents: false,
            empty_first_parameter_page: false,
            millisecond_secret_dates: false,
            rollout_duration: None,
            new_deployment_on_update: true,
            rotation: true,
        }
    }
}

/// What the shaping remembers between calls.
#[derive(Debug, Default)]
pub struct ShapeState {
    /// Secrets created through the proxy, by ARN, and when.
    created: HashMap<String, Instant>,
    /// The last change made through the proxy to each secret (by name and by
    /// ARN), in seconds since the epoch with their fraction.
    changed: HashMap<String, f64>,
    /// By service name: its script and since when it holds (epoch seconds).
    pub scripts: HashMap<String, (Script, f64)>,
    /// Deployments a script failed: id -> (cluster, service, stopped reason).
    failed: HashMap<String, (String, String, String)>,
    /// Rotation configurations set through the proxy, by secret name.
    pub rotations: HashMap<String, Rotation>,
}

/// A secret's rotation as the proxy keeps it for AWS.
#[derive(Debug, Clone, Default)]
pub struct Rotation {
    pub enabled: bool,
    pub lambda_arn: String,
    pub rules: Value,
    /// Rotations RotateSecret started (`RotateImmediately` true or absent).
    pub started: usize,
}

impl Rotation {
    /// `RotationRules` as DescribeSecret reports them.
    fn reported_rules(&self) -> Value {
        let mut rules = self.rules.clone();
        let days = rules["ScheduleExpression"]
            .as_str()
            .and_then(|e| e.strip_prefix("rate(")?.strip_suffix(')')?.split_once(' '))
            .filter(|(_, unit)| unit.starts_with("day"))
            .and_then(|(n, _)| n.parse::<i64>().ok());
        if let (Some(n), Some(m)) = (days, rules.as_object_mut()) {
            m.insert("AutomaticallyAfterDays".into(), Value::from(n));
        }
        rules
    }
}

/// The token of the empty first page that points at moto's first page.
const EMPTY_PAGE: &str = "aws-shape-empty-page";

/// What the proxy does with a request before (or instead of) forwarding it.
pub enum Before {
    Forward(Vec<u8>),
    Answer(Vec<u8>),
}

impl Shape {
    /// Shapes a request: a first DescribeParameters page is answered empty
    /// with a NextToken; that token, sent back, becomes moto's first page.
    /// A secret change is remembered with the instant it was forwarded.
    pub fn before(&self, st: &mut ShapeState, service: &str, operation: &str, body: Vec<u8>) -> Before {
        match (service, operation) {
            ("ssm", "DescribeParameters") if self.empty_first_parameter_page => {
                let Some(mut v) = json(&body) else { return Before::Forward(body) };
                match v.get("NextToken").and_then(Value::as_str) {
                    None => Before::Answer(
                        serde_json::json!({"Parameters": [], "NextToken": EMPTY_PAGE}).to_string().into_bytes(),
                    ),
                    Some(EMPTY_PAGE) => {
                        v.as_object_mut().map(|m| m.remove("NextToken"));
                        Before::Forward(v.to_string().into_bytes())
                    }
                    Some(_) => Before::Forward(body),
                }
            }
            ("secretsmanager", "PutSecretValue" | "UpdateSecret" | "UpdateSecretVersionStage" | "TagResource")
                if self.millisecond_secret_dates =>
            {
                if let Some(id) = json(&body).and_then(|v| v["SecretId"].as_str().map(str::to_string)) {
                    st.changed.insert(id, epoch_now());
                }
                Before::Forward(body)
            }
            ("secretsmanager", "RotateSecret" | "CancelRotateSecret") if self.rotation => {
                let Some(v) = json(&body) else { return Before::Forward(body) };
                let id = v["SecretId"].as_str().unwrap_or_default().to_string();
                let r = st.rotations.entry(secret_name(&id)).or_default();
                if operation == "RotateSecret" {
                    r.enabled = true;
                    if let Some(l) = v["RotationLambdaARN"].as_str() {
                        r.lambda_arn = l.to_string();
                    }
                    if v["RotationRules"].is_object() {
                        r.rules = v["RotationRules"].clone();
                    }
                    if v["RotateImmediately"] != false {
                        r.started += 1;
                    }
                } else {
                    r.enabled = false;
                }
                let name = if id.starts_with("arn:") { Value::Null } else { Value::from(id.as_str()) };
                Before::Answer(serde_json::json!({"Name": name}).to_string().into_bytes())
            }
            ("ecs", "UpdateService") if self.new_deployment_on_update => {
                let Some(mut v) = json(&body) else { return Before::Forward(body) };
                if v["taskDefinition"].is_string() && v["forceNewDeployment"] != true {
                    v["forceNewDeployment"] = Value::Bool(true);
                }
                Before::Forward(v.to_string().into_bytes())
            }
            ("ecs", "ListTasks") => {
                let Some(v) = json(&body) else { return Before::Forward(body) };
                let Some((cluster, _, _)) = v["startedBy"].as_str().and_then(|id| st.failed.get(id)) else {
                    return Before::Forward(body);
                };
                let id = v["startedBy"].as_str().unwrap_or_default();
                let arn = format!("arn:aws:ecs:us-east-1:123456789012:task/{cluster}/{}", task_id(id));
                Before::Answer(serde_json::json!({"taskArns": [arn]}).to_string().into_bytes())
            }
            ("ecs", "DescribeTasks") => {
                let Some(v) = json(&body) else { return Before::Forward(body) };
                let asked: Vec<&str> = v["tasks"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
                let tasks: Vec<Value> = st
                    .failed
                    .iter()
                    .filter_map(|(id, (cluster, service, reason))| {
                        let arn = format!("arn:aws:ecs:us-east-1:123456789012:task/{cluster}/{}", task_id(id));
                        asked.contains(&arn.as_str()).then(|| {
                            serde_json::json!({
                                "taskArn": arn, "lastStatus": "STOPPED", "desiredStatus": "STOPPED",
                                "stopCode": "TaskFailedToStart", "stoppedReason": reason,
                                "stoppedAt": epoch_now(), "startedBy": id, "group": format!("service:{service}"),
                                "containers": [{"name": service, "lastStatus": "STOPPED"}]
                            })
                        })
                    })
                    .collect();
                if tasks.is_empty() {
                    return Before::Forward(body);
                }
                Before::Answer(serde_json::json!({"tasks": tasks, "failures": []}).to_string().into_bytes())
            }
            _ => Before::Forward(body),
        }
    }

    /// Applies the rollout scripts to a DescribeServices answer.
    fn script(&self, st: &mut ShapeState, body: Vec<u8>) -> Vec<u8> {
        if st.scripts.is_empty() {
            return body;
        }
        let Some(mut v) = json(&body) else { return body };
        for s in v.get_mut("services").and_then(Value::as_array_mut).into_iter().flatten() {
            let name = s["serviceName"].as_str().unwrap_or_default().to_string();
            let Some((script, since)) = st.scripts.get(&name).cloned() else { continue };
            let cluster = s["clusterArn"].as_str().and_then(|c| c.rsplit('/').next()).unwrap_or("default").to_string();
            let Some(list) = s.get_mut("deployments").and_then(Value::as_array_mut) else { continue };
            let mut rollback = None;
            for d in list.iter_mut().filter(|d| d["createdAt"].as_f64().is_some_and(|t| t >= since.floor())) {
                let id = d["id"].as_str().unwrap_or_default().to_string();
                match &script {
                    Script::Hang => {
                        d["rolloutState"] = Value::from("IN_PROGRESS");
                        d["rolloutStateReason"] = Value::from(format!("ECS deployment {id} in progress."));
                        d["runningCount"] = Value::from(0);
                    }
                    Script::Fail(reason) | Script::RollBack(reason) => {
                        d["rolloutState"] = Value::from("FAILED");
                        d["rolloutStateReason"] = Value::from(BREAKER_FAILED);
                        d["runningCount"] = Value::from(0);
                        d["failedTasks"] = Value::from(3);
                        st.failed.insert(id.clone(), (cluster.clone(), name.clone(), reason.clone()));
                        if matches!(script, Script::RollBack(_)) {
                            d["status"] = Value::from("ACTIVE");
                            let mut back = d.clone();
                            back["id"] = Value::from(format!("ecs-svc/9{}", task_id(&id)));
                            back["status"] = Value::from("PRIMARY");
                            back["rolloutState"] = Value::from("IN_PROGRESS");
                            back["rolloutStateReason"] = Value::from(
                                "ECS deployment circuit breaker: rolling back to deploymentId ecs-svc/1111111111111111111.",
                            );
                            back["failedTasks"] = Value::from(0);
                            rollback = Some(back);
                        }
                    }
                }
            }
            if let Some(back) = rollback {
                list.insert(0, back);
            }
        }
        v.to_string().into_bytes()
    }
}

impl Shape {
    /// The rotation fields of the secrets the proxy configured.
    fn rotation_fields(&self, st: &ShapeState, body: Vec<u8>) -> Vec<u8> {
        let Some(mut v) = json(&body) else { return body };
        let shape = |s: &mut Value| {
            let Some(r) = s["Name"].as_str().and_then(|n| st.rotations.get(n)) else { return };
            s["RotationEnabled"] = Value::Bool(r.enabled);
            s["RotationLambdaARN"] = Value::from(r.lambda_arn.as_str());
            s["RotationRules"] = r.reported_rules();
        };
        match v.get_mut("SecretList").and_then(Value::as_array_mut) {
            Some(list) => list.iter_mut().for_each(shape),
            None => shape(&mut v),
        }
        v.to_string().into_bytes()
    }
}

/// A secret's name from its name or full ARN (`...:secret:NAME-AbCdEf`).
pub fn secret_name(id: &str) -> String {
    match id.split_once(":secret:") {
        Some((_, rest)) if rest.len() > 7 => rest[..rest.len() - 7].to_string(),
        _ => id.to_string(),
    }
}

/// A task id made from a deployment id (digits only, as ECS's are hex).
fn task_id(deployment: &str) -> String {
    deployment.chars().filter(char::is_ascii_alphanumeric).collect::<String>().to_lowercase()
}

fn epoch_now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64()
}

/// A whole-second date replaced by the remembered instant in the same second.
fn precise(date: &mut Value, at: Option<f64>) {
    if let (Some(d), Some(at)) = (date.as_f64(), at)
        && d.fract() == 0.0
        && at.floor() == d
    {
        *date = Value::from(at);
    }
}

impl Shape {
    /// Rewrites one successful answer of `service`/`operation` (`region` from
    /// the request's credential scope). Bodies it does not understand pass as they are.
    pub fn rewrite(&self, st: &mut ShapeState, service: &str, operation: &str, region: &str, body: Vec<u8>) -> Vec<u8> {
        let body = self.rewrite_shape(st, service, operation, region, body);
        match (service, operation) {
            ("ecs", "DescribeServices") => self.script(st, body),
            ("secretsmanager", "DescribeSecret" | "ListSecrets") if self.rotation && !st.rotations.is_empty() => {
                self.rotation_fields(st, body)
            }
            _ => body,
        }
    }

    fn rewrite_shape(
        &self,
        st: &mut ShapeState,
        service: &str,
        operation: &str,
        region: &str,
        body: Vec<u8>,
    ) -> Vec<u8> {
        match (service, operation) {
            ("secretsmanager", "CreateSecret") => {
                if let Some(v) = json(&body)
                    && let (Some(arn), Some(name)) = (v["ARN"].as_str(), v["Name"].as_str())
                {
                    st.created.insert(arn.to_string(), Instant::now());
                    let now = epoch_now();
                    st.changed.insert(arn.to_string(), now);
                    st.changed.insert(name.to_string(), now);
                }
                body
            }
            ("secretsmanager", "DescribeSecret") if self.millisecond_secret_dates => {
                let Some(mut v) = json(&body) else { return body };
                let at =
                    [&v["ARN"], &v["Name"]].iter().filter_map(|k| k.as_str()).find_map(|k| st.changed.get(k).copied());
                precise(&mut v["LastChangedDate"], at);
                v.to_string().into_bytes()
            }
            ("secretsmanager", "ListSecrets") => {
                let Some(mut v) = json(&body) else { return body };
                if let Some(list) = v.get_mut("SecretList").and_then(Value::as_array_mut) {
                    if let Some(lag) = self.list_secrets_lag {
                        list.retain(|s| {
                            s["ARN"].as_str().and_then(|a| st.created.get(a)).is_none_or(|at| at.elapsed() >= lag)
                        });
                    }
                    if self.millisecond_secret_dates {
                        for s in list.iter_mut() {
                            let at = s["ARN"].as_str().and_then(|a| st.changed.get(a)).copied();
                            if let Some(d) = s.get_mut("LastChangedDate") {
                                precise(d, at);
                            }
                        }
                    }
                }
                v.to_string().into_bytes()
            }
            ("ecs", _)
                if self.normalised_task_definitions
                    || self.full_task_definition_arns
                    || self.rollout_duration.is_some() =>
            {
                let Some(mut v) = json(&body) else { return body };
                if self.normalised_task_definitions
                    && let Some(td) = v.get_mut("taskDefinition")
                {
                    normalise_task_definition(td);
                }
                if self.full_task_definition_arns {
                    let shape_service = |s: &mut Value| {
                        if let Some(td) = s.get_mut("taskDefinition") {
                            full_arn(td, region);
                        }
                        for d in s.get_mut("deployments").and_then(Value::as_array_mut).into_iter().flatten() {
                            if let Some(td) = d.get_mut("taskDefinition") {
                                full_arn(td, region);
                            }
                        }
                    };
                    if let Some(list) = v.get_mut("services").and_then(Value::as_array_mut) {
                        list.iter_mut().for_each(shape_service);
                    }
                    if let Some(s) = v.get_mut("service").filter(|s| s.is_object()) {
                        shape_service(s);
                    }
                }
                if let Some(rollout) = self.rollout_duration {
                    let young =
                        |d: &Value| d["createdAt"].as_f64().is_some_and(|t| epoch_now() - t < rollout.as_secs_f64());
                    let mut shape_rollout = |s: &mut Value| {
                        for d in s.get_mut("deployments").and_then(Value::as_array_mut).into_iter().flatten() {
                            if d["rolloutState"] == "COMPLETED" && young(d) {
                                d["rolloutState"] = Value::from("IN_PROGRESS");
                                d["rolloutStateReason"] = Value::from("ECS deployment in progress.");
                                d["runningCount"] = Value::from(0);
                            }
                        }
                    };
                    if let Some(list) = v.get_mut("services").and_then(Value::as_array_mut) {
                        list.iter_mut().for_each(&mut shape_rollout);
                    }
                    if let Some(s) = v.get_mut("service").filter(|s| s.is_object()) {
                        shape_rollout(s);
                    }
                }
                v.to_string().into_bytes()
            }
            ("iam", "GetRole" | "GetRolePolicy" | "GetAccountAuthorizationDetails")
                if self.url_encoded_iam_documents =>
            {
                let text = String::from_utf8_lossy(&body).into_owned();
                let text = encode_element(&text, "AssumeRolePolicyDocument");
                encode_element(&text, "PolicyDocument").into_bytes()
            }
            _ => body,
        }
    }
}

fn json(body: &[u8]) -> Option<Value> {
    serde_json::from_slice(body).ok()
}

/// `web:2` -> `arn:aws:ecs:REGION:123456789012:task-definition/web:2` (moto's account).
fn full_arn(v: &mut Value, region: &str) {
    if let Some(short) = v.as_str().filter(|s| !s.starts_with("arn:")) {
        *v = Value::String(format!("arn:aws:ecs:{region}:123456789012:task-definition/{short}"));
    }
}

fn normalise_task_definition(td: &mut Value) {
    for (k, unit) in [("cpu", "vcpu"), ("memory", "gb")] {
        let Some(v) = td.get_mut(k) else { continue };
        let size = v.as_str().map(|s| s.trim().to_ascii_lowercase());
        if let Some(n) = size.and_then(|s| s.strip_suffix(unit).and_then(|n| n.trim().parse::<f64>().ok())) {
            *v = Value::String(((n * 1024.0) as u64).to_string());
        } else if let Some(n) = v.as_u64() {
            *v = Value::String(n.to_string());
        }
    }
    if let Some(cs) = td.get_mut("containerDefinitions").and_then(Value::as_array_mut) {
        for c in cs {
            if let Some(h) = c.get_mut("healthCheck").and_then(Value::as_object_mut) {
                for (k, default) in [("interval", 30), ("timeout", 5), ("retries", 3)] {
                    h.entry(k).or_insert(Value::from(default));
                }
            }
        }
    }
}

/// Everything but RFC 3986's unreserved characters is percent-encoded.
const RFC3986: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Every `<tag>JSON</tag>` in an XML answer, URL-encoded as IAM sends it.
fn encode_element(xml: &str, tag: &str) -> String {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = String::with_capacity(xml.len());
    let mut rest = xml;
    while let Some(i) = rest.find(&open) {
        let start = i + open.len();
        let Some(len) = rest[start..].find(&close) else { break };
        out.push_str(&rest[..start]);
        let inner = &rest[start..start + len];
        let plain = inner
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&");
        if plain.trim_start().starts_with('{') {
            out.push_str(&percent_encoding::utf8_percent_encode(&plain, RFC3986).to_string());
        } else {
            out.push_str(inner);
        }
        rest = &rest[start + len..];
    }
    out.push_str(rest);
    out
}

#[test]
fn shaped_answers_are_what_aws_documents() {
    let shape = Shape::aws();
    let mut st = ShapeState::default();
    let td = br#"{"taskDefinition": {"family": "web", "cpu": "1 vCPU", "memory": "2 GB",
        "containerDefinitions": [{"name": "web", "healthCheck": {"command": ["CMD", "true"]}}]}}"#;
    let v: Value =
        serde_json::from_slice(&shape.rewrite(&mut st, "ecs", "DescribeTaskDefinition", "us-east-1", td.to_vec()))
            .unwrap();
    assert_eq!(
        (v["taskDefinition"]["cpu"].as_str(), v["taskDefinition"]["memory"].as_str()),
        (Some("1024"), Some("2048"))
    );
    assert_eq!(v["taskDefinition"]["containerDefinitions"][0]["healthCheck"]["retries"], 3);
    let svc = br#"{"services": [{"taskDefinition": "web:2", "deployments": [{"taskDefinition": "web:1"}]}]}"#;
    let v: Value =
        serde_json::from_slice(&shape.rewrite(&mut st, "ecs", "DescribeServices", "eu-west-1", svc.to_vec())).unwrap();
    assert_eq!(v["services"][0]["taskDefinition"], "arn:aws:ecs:eu-west-1:123456789012:task-definition/web:2");
    assert_eq!(
        v["services"][0]["deployments"][0]["taskDefinition"],
        "arn:aws:ecs:eu-west-1:123456789012:task-definition/web:1"
    );
    let xml = "<GetRoleResult><Role><AssumeRolePolicyDocument>{&quot;Version&quot;: &quot;2012-10-17&quot;}</AssumeRolePolicyDocument></Role></GetRoleResult>";
    let out =
        String::from_utf8(shape.rewrite(&mut st, "iam", "GetRole", "us-east-1", xml.as_bytes().to_vec())).unwrap();
    assert!(
        out.contains("<AssumeRolePolicyDocument>%7B%22Version%22%3A%20%222012-10-17%22%7D</AssumeRolePolicyDocument>"),
        "{out}"
    );
    let created =
        br#"{"ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:web/api-AbCdEf", "Name": "web/api"}"#;
    shape.rewrite(&mut st, "secretsmanager", "CreateSecret", "us-east-1", created.to_vec());
    let listed = br#"{"SecretList": [{"ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:web/api-AbCdEf"}, {"ARN": "old"}]}"#;
    let v: Value =
        serde_json::from_slice(&shape.rewrite(&mut st, "secretsmanager", "ListSecrets", "us-east-1", listed.to_vec()))
            .unwrap();
    assert_eq!(v["SecretList"].as_array().unwrap().len(), 1, "the new secret is not listed yet");

    // The first DescribeParameters page is empty and points at moto's first page.
    let first = br#"{"ParameterFilters": [], "MaxResults": 50}"#.to_vec();
    let Before::Answer(empty) = shape.before(&mut st, "ssm", "DescribeParameters", first) else { panic!("answered") };
    let v: Value = serde_json::from_slice(&empty).unwrap();
    assert_eq!((v["Parameters"].as_array().unwrap().len(), v["NextToken"].as_str()), (0, Some(EMPTY_PAGE)));
    let again = format!(r#"{{"MaxResults": 50, "NextToken": "{EMPTY_PAGE}"}}"#).into_bytes();
    let Before::Forward(sent) = shape.before(&mut st, "ssm", "DescribeParameters", again) else { panic!("forwarded") };
    assert!(serde_json::from_slice::<Value>(&sent).unwrap().get("NextToken").is_none(), "moto's first page");

    // A change made through the proxy is dated to the millisecond.
    let put = br#"{"SecretId": "web/api", "SecretString": "x"}"#.to_vec();
    let Before::Forward(_) = shape.before(&mut st, "secretsmanager", "PutSecretValue", put) else { panic!() };
    let at = st.changed["web/api"];
    let whole = at.floor();
    let described = format!(r#"{{"Name": "web/api", "LastChangedDate": {whole}}}"#).into_bytes();
    let v: Value =
        serde_json::from_slice(&shape.rewrite(&mut st, "secretsmanager", "DescribeSecret", "us-east-1", described))
            .unwrap();
    // (serde_json reads a float back to within one ulp, not always exactly.)
    let d = v["LastChangedDate"].as_f64().unwrap();
    assert!(
        (d - at).abs() < 1e-6 && d.fract() != 0.0,
        "moto's whole second becomes the instant of the change: {d} {at}"
    );
    let other = format!(r#"{{"Name": "web/api", "LastChangedDate": {}}}"#, whole - 5.0).into_bytes();
    let v: Value =
        serde_json::from_slice(&shape.rewrite(&mut st, "secretsmanager", "DescribeSecret", "us-east-1", other))
            .unwrap();
    assert_eq!(v["LastChangedDate"].as_f64(), Some(whole - 5.0), "a date of another second is left as it is");
}
