//! Rollout notifications: for every deployment secretwire starts, a JSON
//! event when it starts and when it completes, fails, is rolled back or times
//! out, posted to each `--notify-webhook` (Slack-compatible: a `text` field,
//! plus structured fields) and, with `--notify-eventbridge`, put on the
//! default bus as `source: secretwire`. Delivery runs on its own task behind
//! a bounded queue: it never blocks reconciling; a full queue drops (and
//! counts) the notification; each delivery is retried with backoff and its
//! failures are counted. A notification carries names, ids and ECS's reasons,
//! never a value (secretwire never reads one).

use std::sync::Arc;
use std::time::Duration;

use backon::Retryable;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde::Serialize;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::aws::Aws;
use crate::aws::retry::Backoff;
use crate::events::format_rfc3339;
use crate::metrics::{Metrics, NotificationLabels};
use crate::rollout::diagnose::Diagnosis;
use crate::rollout::{Ended, Outcome, Started};

/// Notifications waiting for delivery, at most.
const QUEUE: usize = 256;
/// One webhook request, at most.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// One notification, as posted.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    /// Slack's field: one line for people.
    pub text: String,
    /// `redeploy_started`, `rollout_completed`, `rollout_failed`,
    /// `rollout_rolled_back`, `rollout_timed_out`.
    pub event: &'static str,
    pub controller_id: String,
    pub service: String,
    pub cluster: String,
    pub service_name: String,
    pub deployment_id: String,
    pub trigger: &'static str,
    pub detail: String,
    pub started_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diagnosis: Option<Diagnosis>,
}

impl Notification {
    pub fn started(s: &Started, controller_id: &str) -> Self {
        Self {
            text: format!(
                "secretwire: redeploying {} ({}) — {}: {} — deployment {}",
                s.service,
                s.cluster,
                s.trigger.as_str(),
                s.detail,
                s.deployment_id
            ),
            event: "redeploy_started",
            controller_id: controller_id.to_string(),
            service: s.service.clone(),
            cluster: s.cluster.clone(),
            service_name: s.service_name.clone(),
            deployment_id: s.deployment_id.clone(),
            trigger: s.trigger.as_str(),
            detail: s.detail.clone(),
            started_at: format_rfc3339(s.at),
            ended_at: None,
            outcome: None,
            reason: None,
            diagnosis: None,
        }
    }

    /// `None` for a superseded rollout (what replaced it is notified instead).
    pub fn ended(e: &Ended, diagnosis: Option<&Diagnosis>, controller_id: &str) -> Option<Self> {
        let (event, verb) = match e.outcome {
            Outcome::Completed => ("rollout_completed", "completed"),
            Outcome::Failed => ("rollout_failed", "FAILED"),
            Outcome::RolledBack => ("rollout_rolled_back", "ROLLED BACK"),
            Outcome::TimedOut => ("rollout_timed_out", "TIMED OUT"),
            Outcome::Superseded => return None,
        };
        let s = &e.started;
        let mut text = format!(
            "secretwire: rollout of {} ({}) {verb} after {:.0} s — {}: {} — deployment {}",
            s.service,
            s.cluster,
            e.duration(),
            s.trigger.as_str(),
            s.detail,
            s.deployment_id
        );
        if e.outcome.failed() {
            match diagnosis {
                Some(d) => {
                    text.push_str(&format!("\n{}", d.ecs_reason));
                    if let Some(c) = &d.cause {
                        text.push_str(&format!("\nLikely cause: {c}"));
                    }
                }
                None => text.push_str(&format!("\n{}", e.reason)),
            }
        }
        let mut n = Self::started(s, controller_id);
        n.text = text;
        n.event = event;
        n.ended_at = Some(format_rfc3339(e.at));
        n.outcome = Some(e.outcome);
        n.reason = Some(e.reason.clone());
        n.diagnosis = diagnosis.cloned();
        Some(n)
    }
}

/// Where notifications go.
#[derive(Debug, Clone, Default)]
pub struct Sinks {
    pub webhooks: Vec<String>,
    pub eventbridge: bool,
}

impl Sinks {
    pub fn is_empty(&self) -> bool {
        self.webhooks.is_empty() && !self.eventbridge
    }
}

/// The sending end; cheap to clone. Without sinks it sends nothing.
#[derive(Clone)]
pub struct Notifier {
    tx: Option<mpsc::Sender<Notification>>,
    metrics: Arc<Metrics>,
}

impl Notifier {
    pub fn none(metrics: Arc<Metrics>) -> Self {
        Self { tx: None, metrics }
    }

    /// Starts the delivery task.
    pub fn start(sinks: Sinks, aws: Aws, metrics: Arc<Metrics>) -> Self {
        if sinks.is_empty() {
            return Self::none(metrics);
        }
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(deliver(rx, sinks, aws, metrics.clone()));
        Self { tx: Some(tx), metrics }
    }

    /// Queues a notification; never waits. A full queue drops it (counted).
    pub fn send(&self, n: Notification) {
        let Some(tx) = &self.tx else { return };
        if tx.try_send(n).is_err() {
            warn!("Notification queue full: dropping a notification");
            self.count("queue", "dropped");
        }
    }

    fn count(&self, sink: &str, result: &str) {
        self.metrics
            .notifications
            .get_or_create(&NotificationLabels { sink: sink.into(), result: result.into() })
            .inc();
    }
}

type Client = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Full<Bytes>,
>;

fn client() -> Option<Client> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_native_roots(provider)
        .map_err(|e| warn!(error = %e, "No TLS roots: HTTPS webhooks cannot be reached"))
        .ok()?
        .https_or_http()
        .enable_http1()
        .build();
    Some(hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build(https))
}

async fn deliver(mut rx: mpsc::Receiver<Notification>, sinks: Sinks, aws: Aws, metrics: Arc<Metrics>) {
    let client = client();
    let count = |sink: &str, result: &str| {
        metrics.notifications.get_or_create(&NotificationLabels { sink: sink.into(), result: result.into() }).inc();
    };
    while let Some(n) = rx.recv().await {
        let body = match serde_json::to_string(&n) {
            Ok(b) => b,
            Err(_) => continue,
        };
        for url in &sinks.webhooks {
            let Some(client) = &client else {
                count("webhook", "failed");
                continue;
            };
            let post = || async {
                let r = post(client, url, &body).await;
                if r.is_err() {
                    count("webhook", "attempt_failed");
                }
                r
            };
            match post.retry(Backoff::CALL).when(|e: &PostError| e.transient).await {
                Ok(()) => {
                    debug!(event = n.event, "Notification delivered");
                    count("webhook", "delivered");
                }
                Err(e) => {
                    warn!(event = n.event, error = %e.message, "Could not deliver a notification");
                    count("webhook", "failed");
                }
            }
        }
        if sinks.eventbridge {
            let put = || crate::aws::notify::put_event(&aws, "secretwire rollout", &body);
            match put.retry(Backoff::CALL).when(|e: &crate::aws::AwsError| e.transient).await {
                Ok(()) => count("eventbridge", "delivered"),
                Err(e) => {
                    warn!(event = n.event, error = %e, "Could not put a notification event");
                    count("eventbridge", "failed");
                }
            }
        }
    }
}

#[derive(Debug)]
struct PostError {
    message: String,
    transient: bool,
}

async fn post(client: &Client, url: &str, body: &str) -> Result<(), PostError> {
    let req = hyper::Request::post(url)
        .header("content-type", "application/json")
        .header("user-agent", concat!("secretwire/", env!("CARGO_PKG_VERSION")))
        .body(Full::new(Bytes::from(body.to_string())))
        .map_err(|e| PostError { message: format!("bad webhook URL: {e}"), transient: false })?;
    let res = tokio::time::timeout(REQUEST_TIMEOUT, client.request(req))
        .await
        .map_err(|_| PostError { message: "timed out".into(), transient: true })?
        .map_err(|e| PostError { message: e.to_string(), transient: true })?;
    let status = res.status();
    let _ = res.into_body().collect().await;
    if status.is_success() {
        return Ok(());
    }
    // 429 and 5xx are worth another try; other 4xx are not (the URL or payload is wrong).
    Err(PostError {
        message: format!("webhook answered {status}"),
        transient: status.as_u16() == 429 || status.is_server_error(),
    })
}
