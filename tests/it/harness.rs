//! Test harness: a private moto server per test (free loopback port, killed on
//! drop), the secretwire binary run against it, and SDK clients to read back.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use aws_config::BehaviorVersion;

/// Polls an async condition until it holds or the deadline passes (then panics with the run's log).
macro_rules! eventually {
    ($what:expr, $secs:expr, $run:expr, $cond:expr) => {{
        let end = std::time::Instant::now() + std::time::Duration::from_secs($secs);
        loop {
            if $cond {
                break;
            }
            assert!(std::time::Instant::now() < end, "timed out waiting for {}\n--- log\n{}", $what, $run.log());
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }};
}
use aws_sdk_sts::config::Credentials;
pub(crate) use eventually;

/// Whether the suite runs behind the AWS-shape proxy (`make test` runs it once so).
pub fn aws_shape_mode() -> bool {
    std::env::var("SECRETWIRE_AWS_SHAPE").is_ok_and(|v| v == "1")
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub struct Moto {
    child: Child,
    /// moto itself: what a test reads back through (the truth).
    pub url: String,
    /// In AWS-shape mode (`SECRETWIRE_AWS_SHAPE=1`), the proxy the product talks to.
    shaped: Option<crate::faultproxy::FaultProxy>,
}

impl Moto {
    /// Starts `moto_server -p 0` and waits (with a deadline) for its address.
    pub fn start() -> Self {
        let bin = repo_root().join(".venv/bin/moto_server");
        assert!(bin.exists(), "{} missing: run `make venv` (make test does it)", bin.display());
        let mut child = Command::new(bin)
            .args(["-H", "127.0.0.1", "-p", "0"])
            .env("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
            // The demo's services (desiredCount 2) start with their tasks running, so
            // their deployments are COMPLETED; moto never advances one by itself.
            .env("MOTO_ECS_SERVICE_RUNNING", "2")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start moto_server");
        let (tx, rx) = mpsc::channel();
        for pipe in [
            child.stdout.take().map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
            child.stderr.take().map(|p| Box::new(p) as _),
        ]
        .into_iter()
        .flatten()
        {
            let tx = tx.clone();
            // Keep draining the pipe so the server never blocks on a full buffer.
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    if let Some(i) = line.find("http://127.0.0.1:") {
                        let url: String = line[i..].chars().take_while(|c| !c.is_whitespace()).collect();
                        let _ = tx.send(url);
                    }
                }
            });
        }
        let url = rx.recv_timeout(Duration::from_secs(30)).expect("moto_server printed its address within 30 s");
        let shaped = aws_shape_mode().then(|| {
            let shape = Some(crate::awsshape::Shape::aws());
            crate::faultproxy::FaultProxy::start_shaped(&url, Default::default(), 0, shape)
        });
        Self { child, url, shaped }
    }

    /// Where the product is pointed: the AWS-shape proxy in that mode, else moto.
    pub fn endpoint(&self) -> &str {
        self.shaped.as_ref().map_or(self.url.as_str(), |p| p.url.as_str())
    }

    /// The demo bootstrap `make run` uses: cluster, KMS key alias/web, services web and worker.
    pub fn bootstrap(&self) {
        let out = Command::new(repo_root().join(".venv/bin/python"))
            .arg(repo_root().join("scripts/demo_bootstrap.py"))
            .arg(&self.url)
            .output()
            .expect("run demo bootstrap");
        assert!(out.status.success(), "bootstrap failed: {}", String::from_utf8_lossy(&out.stderr));
    }

    pub async fn sdk(&self) -> aws_config::SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(&self.url)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "test"))
            .load()
            .await
    }

    /// The secretwire binary, pointed at this server and nothing else.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_secretwire"));
        for (k, _) in std::env::vars() {
            if k.starts_with("AWS_") || k.starts_with("SECRETWIRE_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("AWS_ENDPOINT_URL", self.endpoint())
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("NO_COLOR", "1");
        cmd
    }

    /// Runs the secretwire binary against this server.
    pub fn secretwire(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = self.command();
        cmd.args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Run::from(cmd.output().expect("run secretwire"))
    }
}

impl Moto {
    /// `POST /moto-api/reset`: every resource gone, as on a new account.
    pub fn reset(&self) {
        use std::io::{Read, Write};
        let addr = self.url.trim_start_matches("http://");
        let mut s = std::net::TcpStream::connect(addr).expect("connect to moto");
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        write!(s, "POST /moto-api/reset HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        assert!(out.starts_with("HTTP/1.1 200") || out.starts_with("HTTP/1.0 200"), "reset: {out}");
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Self {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}\n{}", self.stdout, self.stderr))
    }

    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "exit code\n--- stdout\n{}\n--- stderr\n{}", self.stdout, self.stderr);
        self
    }
}

/// A copy of the example GitOps repo that a test may edit.
pub fn example_repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&repo_root().join("manifests"), dir.path());
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

pub const REGISTRY_CREDENTIALS: &str = r#"{"username":"acme-ci","password":"registry-pass-7Zq9w"}"#;

pub fn demo_env() -> Vec<(&'static str, &'static str)> {
    vec![("REGISTRY_CREDENTIALS", REGISTRY_CREDENTIALS)]
}

/// A running `secretwire run`, with its log collected.
pub struct Running {
    child: Child,
    pub addr: String,
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Moto {
    /// Starts `secretwire run` on a free port; returns once it serves HTTP.
    pub fn start_run(&self, dir: &Path, args: &[&str]) -> Running {
        start_run_with(self.command(), dir, args)
    }
}

/// Starts `secretwire run` from a prepared command (e.g. pointed at a proxy).
pub fn start_run_with(mut cmd: Command, dir: &Path, args: &[&str]) -> Running {
    {
        let dir = dir.display().to_string();
        cmd.args(["run", "-m", &dir, "--listen", "127.0.0.1:0"]).args(args);
        // The demo's variable, unless the test set or removed it on purpose.
        if !cmd.get_envs().any(|(k, _)| k == "REGISTRY_CREDENTIALS") {
            cmd.env("REGISTRY_CREDENTIALS", REGISTRY_CREDENTIALS);
        }
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start secretwire run");
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(i) = line.find("listen=") {
                    let _ = tx.send(line[i + 7..].split_whitespace().next().unwrap_or_default().to_string());
                }
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("run did not start:\n{}", log.lock().unwrap()));
        Running { child, addr, log }
    }
}

impl Running {
    /// A plain HTTP/1.1 GET on loopback: `(status, body)`.
    pub fn get(&self, path: &str) -> (u16, String) {
        self.try_get(path).expect("connect to the controller")
    }

    /// [`Running::get`], `None` when the controller does not answer (it exited).
    pub fn try_get(&self, path: &str) -> Option<(u16, String)> {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(&self.addr).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        write!(s, "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", self.addr).ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        let status = out.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
        Some((status, body))
    }

    pub fn status(&self) -> serde_json::Value {
        serde_json::from_str(&self.get("/status").1).expect("status is JSON")
    }

    /// The value of one Prometheus sample, e.g. `secretwire_redeploys_total{reason="rotation"}`.
    pub fn metric(&self, sample: &str) -> f64 {
        let body = self.get("/metrics").1;
        body.lines()
            .find_map(|l| {
                l.strip_prefix(sample).and_then(|rest| rest.split_whitespace().next()).and_then(|v| v.parse().ok())
            })
            .unwrap_or(0.0)
    }

    /// Polls `cond` until it holds or the deadline passes (then panics with the log).
    pub fn wait_for(&self, what: &str, deadline: Duration, cond: impl Fn(&Running) -> bool) {
        let end = std::time::Instant::now() + deadline;
        while std::time::Instant::now() < end {
            if cond(self) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("timed out waiting for {what}\n--- log\n{}", self.log());
    }

    /// Waits until `n` more reconcile passes than now have succeeded.
    pub fn wait_passes(&self, n: u32) {
        const OK: &str = "secretwire_reconciles_total{result=\"ok\"}";
        let from = self.metric(OK);
        self.wait_for(&format!("{n} more passes"), Duration::from_secs(30), |r| r.metric(OK) >= from + f64::from(n));
    }

    pub fn wait_ready(&self) {
        self.wait_for("readiness", Duration::from_secs(60), |r| r.get("/readyz").0 == 200);
    }

    pub fn redeploys(&self, service: &str) -> u64 {
        self.status()["objects"][format!("Service/{service}")]["redeploys"].as_u64().unwrap_or(0)
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// SIGKILL: no cleanup, as when a host dies.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM; returns the exit code.
    pub fn stop(mut self) -> (i32, String) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let end = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(100));
                return (st.code().unwrap_or(-1), self.log());
            }
            assert!(std::time::Instant::now() < end, "did not stop within 30 s after SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The example repo applied, and its new revisions rolled out. AWS starts a
/// deployment on UpdateService(taskDefinition); moto does not, so the test
/// does what AWS would (otherwise the running tasks look older than the values).
pub async fn applied_and_rolled_out(moto: &Moto, repo: &tempfile::TempDir) {
    moto.secretwire(&["apply", "-m", &repo.path().display().to_string()], &demo_env()).assert_code(0);
    // Change times have one-second precision: deploy strictly after the values were written.
    tick_past_a_second();
    let sdk = moto.sdk().await;
    for s in ["web", "worker"] {
        force_deployment(&sdk, s).await;
    }
    // Values written from now on are strictly newer than these deployments.
    tick_past_a_second();
}

/// UpdateService --force-new-deployment on a service of cluster prod, as a pipeline or a human would.
pub async fn force_deployment(sdk: &aws_config::SdkConfig, service: &str) {
    let ecs = aws_sdk_ecs::Client::new(sdk);
    ecs.update_service().cluster("prod").service(service).force_new_deployment(true).send().await.unwrap();
}

/// Lets the wall clock move past the current second (AWS timestamps have
/// one-second precision): not synchronisation, a distinct timestamp.
pub fn tick_past_a_second() {
    let start = std::time::SystemTime::now();
    while start.elapsed().unwrap() < Duration::from_millis(1100) {
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub async fn deployment_id(sdk: &aws_config::SdkConfig, service: &str) -> String {
    let ecs = aws_sdk_ecs::Client::new(sdk);
    let out = ecs.describe_services().cluster("prod").services(service).send().await.unwrap();
    let s = &out.services()[0];
    s.deployments().iter().find(|d| d.status() == Some("PRIMARY")).and_then(|d| d.id()).unwrap().to_string()
}

pub async fn secret_arn(sdk: &aws_config::SdkConfig, name: &str) -> String {
    let sm = aws_sdk_secretsmanager::Client::new(sdk);
    sm.describe_secret().secret_id(name).send().await.unwrap().arn().unwrap().to_string()
}

/// Publishes a realistic `RotationSucceeded` CloudTrail service event on the default bus.
pub async fn publish_rotation(sdk: &aws_config::SdkConfig, secret_arn: &str) {
    let detail = serde_json::json!({
        "eventVersion": "1.05",
        "userIdentity": {"accountId": "123456789012", "invokedBy": "secretsmanager.amazonaws.com"},
        "eventSource": "secretsmanager.amazonaws.com",
        "eventName": "RotationSucceeded",
        "awsRegion": "us-east-1",
        "requestParameters": null,
        "responseElements": null,
        "additionalEventData": {"SecretId": secret_arn},
        "eventType": "AwsServiceEvent",
        "recipientAccountId": "123456789012"
    });
    put_event(sdk, "aws.secretsmanager", "AWS Service Event via CloudTrail", detail).await;
}

/// Publishes a `Parameter Store Change` (Update) for `name`, as SSM sends it.
pub async fn publish_parameter_update(sdk: &aws_config::SdkConfig, name: &str) {
    let detail = serde_json::json!({"operation": "Update", "name": name, "type": "SecureString"});
    put_event(sdk, "aws.ssm", "Parameter Store Change", detail).await;
}

pub async fn put_event(sdk: &aws_config::SdkConfig, source: &str, detail_type: &str, detail: serde_json::Value) {
    let ev = aws_sdk_eventbridge::Client::new(sdk);
    let entry = aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
        .source(source)
        .detail_type(detail_type)
        .detail(detail.to_string())
        .build();
    let out = ev.put_events().entries(entry).send().await.unwrap();
    assert_eq!(out.failed_entry_count(), 0);
}

/// Messages visible plus in flight, on the controller's queue or its DLQ.
pub async fn queue_depth(sdk: &aws_config::SdkConfig, name: &str) -> u64 {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let url = sqs.get_queue_url().queue_name(name).send().await.unwrap().queue_url.unwrap();
    let out = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(A::ApproximateNumberOfMessages)
        .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .unwrap();
    let a = out.attributes().unwrap();
    [A::ApproximateNumberOfMessages, A::ApproximateNumberOfMessagesNotVisible]
        .iter()
        .map(|k| a.get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0))
        .sum()
}

pub fn epoch_now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64()
}

pub fn rfc3339_now() -> String {
    secretwire::events::format_rfc3339(epoch_now())
}

/// Waits for the next wall-clock second to begin, so that the few calls made
/// right after it land within one second: not synchronisation, a timestamp.
pub fn at_the_start_of_a_second() {
    let now = epoch_now();
    std::thread::sleep(Duration::from_secs_f64(now.floor() + 1.0 - now));
}

/// Sends an EventBridge event body straight to a queue, as EventBridge would deliver it.
pub async fn send_to_queue(sdk: &aws_config::SdkConfig, queue: &str, body: &str) {
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let url = sqs.get_queue_url().queue_name(queue).send().await.unwrap().queue_url.unwrap();
    sqs.send_message().queue_url(&url).message_body(body).send().await.unwrap();
}

/// The start time of a service's newest deployment, as ECS reports it.
pub async fn deployment_start(sdk: &aws_config::SdkConfig, service: &str) -> f64 {
    let ecs = aws_sdk_ecs::Client::new(sdk);
    let out = ecs.describe_services().cluster("prod").services(service).send().await.unwrap();
    out.services()[0]
        .deployments()
        .iter()
        .filter_map(|d| d.created_at())
        .map(|t| t.as_secs_f64())
        .fold(f64::MIN, f64::max)
}

/// A parameter's last-change time, as SSM reports it (to the millisecond, on AWS and on moto).
pub async fn parameter_changed_at(sdk: &aws_config::SdkConfig, name: &str) -> f64 {
    let ssm = aws_sdk_ssm::Client::new(sdk);
    let filter =
        aws_sdk_ssm::types::ParameterStringFilter::builder().key("Name").option("Equals").values(name).build().unwrap();
    let out = ssm.describe_parameters().parameter_filters(filter).send().await.unwrap();
    out.parameters()[0].last_modified_date().unwrap().as_secs_f64()
}

/// The tags of one SSM parameter.
pub async fn parameter_tags(sdk: &aws_config::SdkConfig, name: &str) -> std::collections::BTreeMap<String, String> {
    let ssm = aws_sdk_ssm::Client::new(sdk);
    let out = ssm
        .list_tags_for_resource()
        .resource_type(aws_sdk_ssm::types::ResourceTypeForTagging::Parameter)
        .resource_id(name)
        .send()
        .await
        .unwrap();
    out.tag_list().iter().map(|t| (t.key().to_string(), t.value().to_string())).collect()
}

/// A private emulator with the demo account, and the example repo applied and rolled out.
pub async fn rolled_out_example() -> (Moto, tempfile::TempDir, aws_config::SdkConfig) {
    let moto = Moto::start();
    moto.bootstrap();
    let repo = example_repo();
    applied_and_rolled_out(&moto, &repo).await;
    let sdk = moto.sdk().await;
    (moto, repo, sdk)
}

/// Every value of the demo (read back from moto, the truth), JSON fields of
/// secrets included: what no output, log or status may ever contain.
pub async fn generated_values(sdk: &aws_config::SdkConfig) -> Vec<String> {
    let sm = aws_sdk_secretsmanager::Client::new(sdk);
    let ssm = aws_sdk_ssm::Client::new(sdk);
    let mut values: Vec<String> = vec!["registry-pass-7Zq9w".into()];
    for name in ["web/api", "web/splunk-token", "registry/dockerhub"] {
        let v = sm.get_secret_value().secret_id(name).send().await.unwrap().secret_string.unwrap();
        if let Ok(serde_json::Value::Object(m)) = serde_json::from_str::<serde_json::Value>(&v) {
            values.extend(m.values().filter_map(|x| x.as_str()).filter(|s| s.len() >= 12).map(str::to_string));
        }
        values.push(v);
    }
    let p = ssm.get_parameter().name("/web/database-password").with_decryption(true).send().await.unwrap();
    values.push(p.parameter.unwrap().value.unwrap());
    assert!(values.len() >= 6);
    values
}

/// The actions a policy document's statements allow.
pub fn policy_actions(doc: &serde_json::Value) -> std::collections::BTreeSet<String> {
    doc["Statement"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| match &s["Action"] {
            serde_json::Value::String(a) => vec![a.clone()],
            serde_json::Value::Array(a) => a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect(),
            _ => vec![],
        })
        .collect()
}

/// What a proxy saw, as IAM actions (the service is the SigV4 signing name),
/// the caller-identity lookup left out.
pub fn sent_actions(proxy: &crate::faultproxy::FaultProxy) -> std::collections::BTreeSet<String> {
    proxy
        .calls()
        .iter()
        .filter(|c| !(c.service == "sts" && c.operation == "GetCallerIdentity"))
        .map(|c| format!("{}:{}", c.service, c.operation.strip_suffix("Batch").unwrap_or(&c.operation)))
        .collect()
}
