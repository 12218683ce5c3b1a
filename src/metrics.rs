//! Prometheus metrics, and an exact in-process tally of AWS calls that the CLI
//! prints in its summary (and tests read to prove "zero writes").

use std::collections::BTreeMap;
use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AwsCallLabels {
    pub service: String,
    pub operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NotificationLabels {
    pub sink: String,
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

pub struct Metrics {
    registry: Registry,
    pub aws_calls: Family<AwsCallLabels, Counter>,
    pub reconciles: Family<ResultLabels, Counter>,
    pub reconcile_seconds: Histogram,
    pub events: Family<OutcomeLabels, Counter>,
    pub redeploys: Family<ReasonLabels, Counter>,
    pub errors: Family<ResultLabels, Counter>,
    pub queue_lag_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    pub rate_limit_wait_seconds: Family<AwsCallLabels, Counter<f64, std::sync::atomic::AtomicU64>>,
    pub rollouts: Family<OutcomeLabels, Counter>,
    pub rollout_seconds: Histogram,
    pub rollouts_in_progress: Gauge,
    pub notifications: Family<NotificationLabels, Counter>,
    tally: Mutex<BTreeMap<(String, String), u64>>,
    waited: Mutex<f64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("secretwire");
        let aws_calls = Family::default();
        registry.register(
            "aws_calls",
            "AWS API calls sent, by service and operation (every attempt)",
            aws_calls.clone(),
        );
        let reconciles = Family::default();
        registry.register("reconciles", "Object reconciles by result", reconciles.clone());
        let reconcile_seconds = Histogram::new(exponential_buckets(0.005, 2.0, 14));
        registry.register(
            "reconcile_duration_seconds",
            "Duration of one full reconcile pass",
            reconcile_seconds.clone(),
        );
        let events = Family::default();
        registry.register("events", "Rotation events by outcome", events.clone());
        let redeploys = Family::default();
        registry.register("redeploys", "Forced redeploys by reason", redeploys.clone());
        let errors = Family::default();
        registry.register("errors", "Errors by kind", errors.clone());
        let queue_lag_seconds = Gauge::default();
        registry.register(
            "queue_lag_seconds",
            "Age of the newest event message when it was received",
            queue_lag_seconds.clone(),
        );
        let rate_limit_wait_seconds = Family::default();
        registry.register(
            "rate_limit_wait_seconds",
            "Time calls waited for the client-side rate limiter, by operation",
            rate_limit_wait_seconds.clone(),
        );
        let rollouts = Family::default();
        registry.register(
            "rollouts",
            "Rollouts of deployments secretwire started, by how they ended",
            rollouts.clone(),
        );
        // 5 s to ~11 h: ECS deployments take minutes.
        let rollout_seconds = Histogram::new(exponential_buckets(5.0, 2.0, 14));
        registry.register(
            "rollout_duration_seconds",
            "From a deployment's start to its end, whatever the outcome",
            rollout_seconds.clone(),
        );
        let rollouts_in_progress = Gauge::default();
        registry.register("rollouts_in_progress", "Rollouts followed now", rollouts_in_progress.clone());
        let notifications = Family::default();
        registry.register(
            "notifications",
            "Rollout notifications by sink and result: delivered, failed (after every retry), attempt_failed (one try), dropped (queue full)",
            notifications.clone(),
        );
        Self {
            rollouts,
            rollout_seconds,
            rollouts_in_progress,
            notifications,
            rate_limit_wait_seconds,
            registry,
            aws_calls,
            reconciles,
            reconcile_seconds,
            events,
            redeploys,
            errors,
            queue_lag_seconds,
            tally: Mutex::new(BTreeMap::new()),
            waited: Mutex::new(0.0),
        }
    }

    pub fn record_aws_call(&self, service: &str, operation: &str) {
        self.aws_calls.get_or_create(&AwsCallLabels { service: service.into(), operation: operation.into() }).inc();
        let mut t = self.tally.lock().unwrap_or_else(|e| e.into_inner());
        *t.entry((service.to_string(), operation.to_string())).or_default() += 1;
    }

    pub fn record_rate_limit_wait(&self, operation: &str, wait: std::time::Duration) {
        let (service, op) = operation.split_once(':').unwrap_or(("", operation));
        self.rate_limit_wait_seconds
            .get_or_create(&AwsCallLabels { service: service.into(), operation: op.into() })
            .inc_by(wait.as_secs_f64());
        *self.waited.lock().unwrap_or_else(|e| e.into_inner()) += wait.as_secs_f64();
    }

    /// Seconds calls spent waiting for the rate limiter so far.
    pub fn rate_limit_waited(&self) -> f64 {
        *self.waited.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `service:Operation -> count`, for summaries.
    pub fn aws_call_tally(&self) -> BTreeMap<String, u64> {
        let t = self.tally.lock().unwrap_or_else(|e| e.into_inner());
        t.iter().map(|((s, o), n)| (format!("{s}:{o}"), *n)).collect()
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).unwrap_or_default();
        out
    }
}

/// Whether an operation changes state in AWS (reads are Describe/List/Get).
pub fn is_write(operation: &str) -> bool {
    // AssumeRole changes nothing in an account: it only hands out a session.
    !["Describe", "List", "Get", "Receive", "AssumeRole"].iter().any(|p| operation.starts_with(p))
}
