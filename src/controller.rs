//! `secretwire run`: the long-lived controller. Level-triggered: every pass
//! rebuilds from observed state (startup, `--resync-interval`, manifest
//! changes, retries after transient failures); events only add work. A
//! rotation event becomes a forced deployment of exactly the services that
//! read the value, coalesced per service within `--debounce`, and its SQS
//! message is deleted only when every redeploy it asked for is done or found
//! unnecessary.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};
use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tracing::{debug, error, info, warn};

use crate::aws::{Aws, AwsError, classify};
use crate::events::{
    ChangedValue, Parsed, ValueChange, ValueIndex, format_rfc3339, needs_last_change, serves_event, started_after,
};
use crate::metrics::{Metrics, OutcomeLabels, ReasonLabels, ResultLabels};
use crate::model::{Desired, Kind, ObjectKey, ServiceDef, ValueRef};
use crate::observed::{Observed, ObservedService};
use crate::plan::{Op, ProblemKind};
use crate::reconcile::{ApplyReport, Reconciler};

/// Where rotation events come from.
#[derive(Debug, Clone)]
pub enum EventsMode {
    /// Create (idempotently) the queue, DLQ and rules, then consume.
    Ensure,
    /// Consume an existing queue.
    Queue(String),
    Off,
}

#[derive(Debug, Clone)]
pub struct RunConfig {
    pub dir: PathBuf,
    pub listen: SocketAddr,
    pub resync: Duration,
    pub debounce: Duration,
    pub events: EventsMode,
    pub concurrency: usize,
    pub controller_id: String,
    /// Receives before a message moves to the dead-letter queue.
    pub max_receives: u32,
    /// A failed redeploy's message comes back after this times its receive count.
    pub failure_backoff: Duration,
    /// Roles and KMS keys are re-read at most this often.
    pub reverify: Duration,
    /// Visibility timeout of received messages (at least the debounce window).
    pub visibility: Duration,
}

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or_default()
}

// ---- status ---------------------------------------------------------------

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub status: &'static str,
    pub reason: String,
    pub message: String,
    pub last_transition_time: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Redeploy {
    pub at: String,
    pub reason: &'static str,
    pub trigger: String,
    pub deployment_id: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectStatus {
    pub kind: Kind,
    pub name: String,
    pub conditions: Vec<Condition>,
    pub last_applied_revision: Option<String>,
    pub last_redeploy: Option<Redeploy>,
    pub redeploys: u64,
}

impl ObjectStatus {
    fn new(key: &ObjectKey) -> Self {
        let c = |kind| Condition {
            kind,
            status: "Unknown",
            reason: "Pending".into(),
            message: String::new(),
            last_transition_time: format_rfc3339(now()),
        };
        Self {
            kind: key.kind,
            name: key.name.clone(),
            conditions: vec![c("Ready"), c("Synced")],
            last_applied_revision: None,
            last_redeploy: None,
            redeploys: 0,
        }
    }

    fn set(&mut self, kind: &str, ok: bool, reason: &str, message: &str) {
        let status = if ok { "True" } else { "False" };
        if let Some(c) = self.conditions.iter_mut().find(|c| c.kind == kind) {
            if c.status != status {
                c.last_transition_time = format_rfc3339(now());
            }
            c.status = status;
            c.reason = reason.to_string();
            c.message = message.to_string();
        }
    }
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusBoard {
    pub ready: bool,
    pub last_reconcile: Option<String>,
    pub events_queue: Option<String>,
    pub manifest_errors: Vec<String>,
    pub objects: BTreeMap<String, ObjectStatus>,
}

impl StatusBoard {
    fn object(&mut self, key: &ObjectKey) -> &mut ObjectStatus {
        self.objects.entry(key.to_string()).or_insert_with(|| ObjectStatus::new(key))
    }
}

/// What the HTTP endpoints read.
pub struct Shared {
    pub metrics: Arc<Metrics>,
    pub status: Mutex<StatusBoard>,
    pub ready: AtomicBool,
}

impl Shared {
    fn board(&self) -> std::sync::MutexGuard<'_, StatusBoard> {
        self.status.lock().unwrap_or_else(|e| e.into_inner())
    }
}

// ---- HTTP -----------------------------------------------------------------

pub fn router(shared: Arc<Shared>) -> axum::Router {
    use axum::http::{StatusCode, header};
    use axum::routing::get;
    let s1 = shared.clone();
    let s2 = shared.clone();
    let s3 = shared;
    axum::Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(move || {
                let ready = s1.ready.load(Ordering::SeqCst);
                async move {
                    if ready { (StatusCode::OK, "ready\n") } else { (StatusCode::SERVICE_UNAVAILABLE, "first reconcile not finished\n") }
                }
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let body = s2.metrics.encode();
                async move { ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], body) }
            }),
        )
        .route(
            "/status",
            get(move || {
                let body = serde_json::to_string_pretty(&*s3.board()).unwrap_or_default();
                async move { ([(header::CONTENT_TYPE, "application/json")], body) }
            }),
        )
}

// ---- the controller ---------------------------------------------------------

/// One received SQS message.
#[derive(Debug, Clone)]
pub struct Message {
    pub id: String,
    pub handle: String,
    pub body: String,
    pub receive_count: u32,
}

struct Tracked {
    handle: String,
    receive_count: u32,
    outstanding: BTreeSet<String>,
    failed: bool,
}

struct PendingChange {
    change: ValueChange,
    event_id: String,
    message_id: String,
}

struct Pending {
    due: Instant,
    changes: Vec<PendingChange>,
}

/// `(event id, service)` pairs already handled: a duplicate delivery of the
/// same event is not deployed twice. Bounded.
#[derive(Default)]
struct Handled {
    set: HashSet<(String, String)>,
    order: VecDeque<(String, String)>,
}

impl Handled {
    const MAX: usize = 50_000;
    fn insert(&mut self, k: (String, String)) {
        if self.set.insert(k.clone()) {
            self.order.push_back(k);
            if self.order.len() > Self::MAX
                && let Some(old) = self.order.pop_front()
            {
                self.set.remove(&old);
            }
        }
    }
    fn contains(&self, k: &(String, String)) -> bool {
        self.set.contains(k)
    }
}

struct Controller {
    cfg: RunConfig,
    rec: Reconciler,
    shared: Arc<Shared>,
    queue: Option<String>,
    desired: Desired,
    fingerprint: Vec<(PathBuf, u128, u64)>,
    index: ValueIndex,
    pending: BTreeMap<String, Pending>,
    tracked: HashMap<String, Tracked>,
    handled: Handled,
    failures: u32,
    retry_at: Option<Instant>,
    /// Objects whose manifest is invalid now: reconciled from their last good version.
    kept_invalid: BTreeSet<ObjectKey>,
    /// Per service, the latest value change a stale redeploy already answered:
    /// that deployment started after the change was visible, so it is fresh
    /// even when the change time is a whole second.
    stale_answered: HashMap<String, f64>,
}

/// Runs until SIGTERM/SIGINT; returns once in-flight work is finished.
pub async fn run(cfg: RunConfig, metrics: Arc<Metrics>, limits: crate::aws::limit::RateLimits) -> anyhow::Result<()> {
    let aws = Aws::connect(metrics.clone(), limits).await?;
    let shared =
        Arc::new(Shared { metrics, status: Mutex::new(StatusBoard::default()), ready: AtomicBool::new(false) });
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        info!("Shutdown requested: no new messages; unprocessed ones stay on the queue");
        let _ = stop_tx.send(true);
    });
    let listener = tokio::net::TcpListener::bind(cfg.listen).await?;
    info!(listen = %listener.local_addr()?, "Serving /healthz /readyz /metrics /status");
    let mut http_stop = stop_rx.clone();
    let server = tokio::spawn(
        axum::serve(listener, router(shared.clone()))
            .with_graceful_shutdown(async move {
                let _ = http_stop.wait_for(|s| *s).await;
            })
            .into_future(),
    );

    let queue = match &cfg.events {
        EventsMode::Ensure => {
            use backon::Retryable;
            // Transient failures (throttling, 5xx) at startup are ridden out, not fatal.
            let ensure = || crate::infra::ensure(&aws, &cfg.controller_id, cfg.max_receives);
            Some(ensure.retry(crate::execute::backoff()).when(|e: &AwsError| e.transient).await?)
        }
        EventsMode::Queue(u) => Some(u.clone()),
        EventsMode::Off => None,
    };
    shared.board().events_queue = queue.clone();
    let (msg_tx, mut msg_rx) = mpsc::channel::<Vec<Message>>(4);
    if let Some(q) = &queue {
        // A message held for its debounce window must not come back meanwhile.
        let visibility = cfg.visibility.max(cfg.debounce + Duration::from_secs(1)).as_secs().clamp(1, 43_200) as i32;
        tokio::spawn(receive(aws.clone(), q.clone(), visibility, msg_tx, stop_rx.clone()));
        info!(queue = %q, "Listening for rotation events");
    }

    let rec = Reconciler {
        aws,
        controller_id: cfg.controller_id.clone(),
        concurrency: cfg.concurrency,
        cache: Default::default(),
        slow: Arc::new(crate::aws::observe::SlowCache::new(cfg.reverify)),
    };
    let mut ctl = Controller {
        cfg,
        rec,
        shared: shared.clone(),
        queue,
        desired: Desired::default(),
        fingerprint: Vec::new(),
        index: ValueIndex::default(),
        pending: BTreeMap::new(),
        tracked: HashMap::new(),
        handled: Handled::default(),
        failures: 0,
        retry_at: None,
        kept_invalid: BTreeSet::new(),
        stale_answered: HashMap::new(),
    };
    ctl.fingerprint = fingerprint(&ctl.cfg.dir);
    ctl.reload();
    ctl.pass("startup").await;
    shared.ready.store(true, Ordering::SeqCst);
    info!("Ready");

    let mut stop = stop_rx.clone();
    let mut resync = tokio::time::interval_at(tokio::time::Instant::now() + ctl.cfg.resync, ctl.cfg.resync);
    resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut watch_tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        let flush_at = ctl.pending.values().map(|p| p.due).min();
        let retry_at = ctl.retry_at;
        tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => break,
            Some(batch) = msg_rx.recv() => ctl.on_messages(batch).await,
            _ = sleep_until(flush_at), if flush_at.is_some() => ctl.flush_due().await,
            _ = watch_tick.tick() => {
                if ctl.manifests_changed().await {
                    ctl.reload();
                    ctl.pass("manifest change").await;
                }
            }
            _ = resync.tick() => ctl.pass("resync").await,
            _ = sleep_until(retry_at), if retry_at.is_some() => ctl.pass("retry").await,
        }
    }
    ctl.release_held().await;
    let _ = server.await;
    Ok(())
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("install SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

/// Long-polls the queue and hands batches to the controller until stopped.
async fn receive(
    aws: Aws,
    queue: String,
    visibility: i32,
    tx: mpsc::Sender<Vec<Message>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_millis(500);
    // A 20 s long poll must not hit the client's read timeout.
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .read_timeout(Duration::from_secs(30))
        .operation_attempt_timeout(Duration::from_secs(35))
        .operation_timeout(Duration::from_secs(40))
        .build();
    loop {
        if *stop.borrow() {
            return;
        }
        let req = aws
            .sqs
            .receive_message()
            .queue_url(&queue)
            .max_number_of_messages(10)
            .wait_time_seconds(20)
            .visibility_timeout(visibility)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .customize()
            .config_override(aws_sdk_sqs::config::Builder::default().timeout_config(timeouts.clone()))
            .send();
        let res = tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            r = req => r,
        };
        match res {
            Ok(out) => {
                backoff = Duration::from_millis(500);
                let batch: Vec<Message> = out
                    .messages()
                    .iter()
                    .map(|m| Message {
                        id: m.message_id().unwrap_or_default().to_string(),
                        handle: m.receipt_handle().unwrap_or_default().to_string(),
                        body: m.body().unwrap_or_default().to_string(),
                        receive_count: m
                            .attributes()
                            .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                            .and_then(|c| c.parse().ok())
                            .unwrap_or(1),
                    })
                    .collect();
                if !batch.is_empty() && tx.send(batch).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                let e = classify("ReceiveMessage", e);
                warn!(error = %e, retry_in = ?backoff, "Receiving events failed");
                tokio::select! {
                    _ = stop.wait_for(|s| *s) => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// Cheap change detection: every manifest file's path, mtime and size.
fn fingerprint(dir: &std::path::Path) -> Vec<(PathBuf, u128, u64)> {
    let mut diags = Vec::new();
    crate::manifest::load::manifest_files(dir, &mut diags)
        .into_iter()
        .map(|p| {
            let m = std::fs::metadata(&p).ok();
            let mtime = m
                .as_ref()
                .and_then(|m| m.modified().ok())
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            (p, mtime, m.map_or(0, |m| m.len()))
        })
        .collect()
}

impl Controller {
    async fn manifests_changed(&mut self) -> bool {
        let dir = self.cfg.dir.clone();
        let now_fp = tokio::task::spawn_blocking(move || fingerprint(&dir)).await.unwrap_or_default();
        if now_fp == self.fingerprint {
            return false;
        }
        // Editors write in bursts: wait until the directory is quiet.
        let mut last = now_fp;
        loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let dir = self.cfg.dir.clone();
            let fp = tokio::task::spawn_blocking(move || fingerprint(&dir)).await.unwrap_or_default();
            if fp == last {
                break;
            }
            last = fp;
        }
        self.fingerprint = last;
        true
    }

    /// Loads manifests. An object that became invalid keeps its last good
    /// version; an object that disappeared is dropped (its AWS resources stay).
    fn reload(&mut self) {
        let (mut fresh, diags) = crate::manifest::load_dir(&self.cfg.dir);
        for d in &diags {
            warn!(diagnostic = %d, "Invalid manifest");
        }
        let mut board = self.shared.board();
        board.manifest_errors = diags.iter().map(ToString::to_string).collect();
        self.kept_invalid.clear();
        for key in fresh.invalid.clone() {
            let kept = carry_over(&mut self.desired, &mut fresh, &key);
            let msg = if kept {
                "manifest is invalid; keeping the last good version"
            } else {
                "manifest is invalid; not applied"
            };
            board.object(&key).set("Ready", false, "InvalidManifest", msg);
            if kept {
                fresh.invalid.remove(&key);
                self.kept_invalid.insert(key.clone());
            }
        }
        // A file that no longer parses yields no document at all: its objects
        // keep their last good version too, instead of looking removed.
        let broken: BTreeSet<&std::path::Path> = diags.iter().map(|d| d.path.as_path()).collect();
        let before: BTreeSet<ObjectKey> = keys(&self.desired);
        for gone in before.difference(&keys(&fresh)) {
            let origin = match gone.kind {
                Kind::Parameter => self.desired.parameters.get(&gone.name).map(|d| d.origin.path.clone()),
                Kind::Secret => self.desired.secrets.get(&gone.name).map(|d| d.origin.path.clone()),
                Kind::Service => self.desired.services.get(&gone.name).map(|d| d.origin.path.clone()),
            };
            if fresh.invalid.contains(gone) || origin.as_deref().is_some_and(|p| broken.contains(p)) {
                carry_over(&mut self.desired, &mut fresh, gone);
                board.object(gone).set(
                    "Ready",
                    false,
                    "InvalidManifest",
                    "manifest is invalid; keeping the last good version",
                );
                self.kept_invalid.insert(gone.clone());
                continue;
            }
            warn!(object = %gone, "Removed from the manifests; its AWS resources are left in place");
            self.shared.metrics.errors.get_or_create(&ResultLabels { result: "object_removed".into() }).inc();
            board.objects.remove(&gone.to_string());
        }
        drop(board);
        self.desired = fresh;
    }

    /// A full level-triggered pass: apply, then the stale backstop.
    async fn pass(&mut self, why: &str) {
        let started = Instant::now();
        debug!(trigger = why, "Reconcile pass");
        let result = self.rec.apply(&self.desired).await;
        let m = self.shared.metrics.clone();
        m.reconcile_seconds.observe(started.elapsed().as_secs_f64());
        match result {
            Ok(report) => {
                let transient_failure = report.results.iter().any(|r| r.error.is_some());
                self.record(&report);
                self.index = ValueIndex::build(&self.desired, &secret_arns(&report.observed));
                let updated: BTreeSet<String> = report
                    .plan
                    .objects
                    .iter()
                    .filter(|o| o.changes.iter().flat_map(|c| &c.ops).any(|op| matches!(op, Op::UpdateService { .. })))
                    .map(|o| o.key.name.clone())
                    .collect();
                self.stale_backstop(&report.observed, &updated).await;
                m.reconciles
                    .get_or_create(&ResultLabels { result: if transient_failure { "failed" } else { "ok" }.into() })
                    .inc();
                self.schedule_retry(transient_failure);
            }
            Err(e) => {
                error!(error = %e, "Reconcile pass failed before any change");
                m.reconciles.get_or_create(&ResultLabels { result: "error".into() }).inc();
                m.errors.get_or_create(&ResultLabels { result: "observe".into() }).inc();
                self.schedule_retry(true);
            }
        }
        self.shared.board().last_reconcile = Some(format_rfc3339(now()));
    }

    /// Per-failure exponential backoff with jitter, capped by the resync interval.
    fn schedule_retry(&mut self, failed: bool) {
        if !failed {
            self.failures = 0;
            self.retry_at = None;
            return;
        }
        self.failures += 1;
        let base = Duration::from_secs(1) * 2u32.saturating_pow(self.failures.min(8));
        let capped = base.min(self.cfg.resync);
        let jitter = capped.mul_f64(0.5 + (now().fract() * 0.5));
        self.retry_at = Some(Instant::now() + jitter);
    }

    fn record(&self, report: &ApplyReport) {
        let mut board = self.shared.board();
        for obj in &report.plan.objects {
            let st = board.object(&obj.key);
            match obj.problems.iter().find(|p| p.kind != ProblemKind::Drift) {
                Some(p) => {
                    let reason = match p.kind {
                        ProblemKind::Conflict => "Conflict",
                        ProblemKind::Blocked => "Blocked",
                        _ => "Error",
                    };
                    st.set("Ready", false, reason, &format!("{}: {}", p.resource, p.message));
                    st.set("Synced", false, reason, "not applied");
                }
                None if self.kept_invalid.contains(&obj.key) => {
                    st.set("Ready", false, "InvalidManifest", "manifest is invalid; keeping the last good version");
                    st.set("Synced", true, "LastGoodVersion", "");
                }
                None => {
                    st.set("Ready", true, "Reconciled", "");
                    let drift: Vec<String> =
                        obj.problems.iter().map(|p| format!("{}: {}", p.resource, p.message)).collect();
                    if drift.is_empty() {
                        st.set("Synced", true, "UpToDate", "");
                    } else {
                        st.set("Synced", true, "Drift", &drift.join("; "));
                    }
                }
            }
        }
        for r in &report.results {
            let st = board.object(&r.key);
            if let Some(e) = &r.error {
                st.set("Synced", false, "ApplyFailed", e);
                self.shared.metrics.errors.get_or_create(&ResultLabels { result: "apply".into() }).inc();
            }
            if let Some(rev) = &r.registered {
                st.last_applied_revision = Some(rev.clone());
            }
        }
        for obj in report.plan.objects.iter().filter(|o| o.key.kind == Kind::Service) {
            let st = board.object(&obj.key);
            if st.last_applied_revision.is_none()
                && let Some(c) = obj.changes.iter().find(|c| c.resource.starts_with("task definition"))
                && c.ops.is_empty()
            {
                st.last_applied_revision = Some(c.detail.clone());
            }
        }
    }

    /// Redeploys services whose unpinned values changed after their newest
    /// deployment started (events lost while the controller was down).
    async fn stale_backstop(&mut self, o: &Observed, just_updated: &BTreeSet<String>) {
        let mut stale = Vec::new();
        for svc in self.desired.services.values().filter(|s| s.redeploy_on_change && !just_updated.contains(&s.name)) {
            let Some(obs) = o.services.get(&(svc.cluster.clone(), svc.service_name.clone())) else { continue };
            let Some(started) = obs.newest_deployment_start() else { continue };
            if obs.deployment_controller != "ECS" {
                continue;
            }
            // A whole-second change time leaves a second of doubt: one redeploy, no loop.
            if let Some((changed, what)) = newest_value_change(svc, o)
                && !started_after(started, changed)
                && self.stale_answered.get(&svc.name).is_none_or(|answered| *answered < changed)
            {
                let why = format!("{what} changed at {}", format_rfc3339(changed));
                stale.push((svc.name.clone(), changed, why, obs.primary_deployment().map(str::to_string)));
            }
        }
        for (name, changed, why, before) in stale {
            info!(service = %name, trigger = %why, "Value changed after the newest deployment: redeploying");
            match self.redeploy(&name, before.as_deref(), "stale", &why).await {
                Ok(()) => {
                    self.stale_answered.insert(name, changed);
                }
                Err(e) => {
                    warn!(service = %name, error = %e, "Stale redeploy failed; the next pass retries");
                    self.schedule_retry(true);
                }
            }
        }
    }

    /// Forces a new deployment. `before` is the PRIMARY deployment observed
    /// before, so a lost answer never turns into a second deployment.
    async fn redeploy(
        &self,
        service: &str,
        before: Option<&str>,
        reason: &'static str,
        trigger: &str,
    ) -> Result<(), AwsError> {
        let Some(def) = self.desired.services.get(service) else { return Ok(()) };
        let deployment =
            crate::execute::force_new_deployment(&self.rec.aws, &def.cluster, &def.service_name, before).await?;
        self.shared.metrics.redeploys.get_or_create(&ReasonLabels { reason: reason.into() }).inc();
        let mut board = self.shared.board();
        let st = board.object(&ObjectKey::new(Kind::Service, service));
        st.redeploys += 1;
        st.last_redeploy = Some(Redeploy {
            at: format_rfc3339(now()),
            reason,
            trigger: trigger.to_string(),
            deployment_id: deployment.clone(),
        });
        info!(service = %service, reason, trigger = %trigger, deployment = deployment.as_deref().unwrap_or("?"), "Forced a new deployment");
        Ok(())
    }

    async fn on_messages(&mut self, batch: Vec<Message>) {
        let scope = self.rec.aws.scope.clone();
        let mut delete_now = Vec::new();
        let m = self.shared.metrics.clone();
        let count = |outcome: &str| m.events.get_or_create(&OutcomeLabels { outcome: outcome.into() }).inc();
        for msg in batch {
            if let Some(sent) = serde_json::from_str::<serde_json::Value>(&msg.body)
                .ok()
                .and_then(|v| v["time"].as_str().and_then(crate::events::parse_rfc3339))
            {
                self.shared.metrics.queue_lag_seconds.set((now() - sent).max(0.0));
            }
            match crate::events::parse(&msg.body, &scope) {
                Parsed::Malformed(why) => {
                    warn!(message = %msg.id, reason = %why, "Dropping a malformed message");
                    count("malformed");
                    delete_now.push(msg);
                }
                Parsed::Ignored(why) => {
                    debug!(message = %msg.id, reason = %why, "Event does not change a value tasks read");
                    count("ignored");
                    delete_now.push(msg);
                }
                Parsed::Change(change) => {
                    let event_id = serde_json::from_str::<serde_json::Value>(&msg.body)
                        .ok()
                        .and_then(|v| v["id"].as_str().map(str::to_string))
                        .unwrap_or_else(|| msg.id.clone());
                    let services: BTreeSet<String> = self
                        .index
                        .services_for(&change.value)
                        .into_iter()
                        .filter(|s| !self.handled.contains(&(event_id.clone(), s.clone())))
                        .collect();
                    if services.is_empty() {
                        let readers = self.index.services_for(&change.value);
                        count(if readers.is_empty() { "unmatched" } else { "duplicate" });
                        debug!(value = %change.value, "No service needs a redeploy for this change");
                        delete_now.push(msg);
                        continue;
                    }
                    count("matched");
                    info!(value = %change.value, cause = %change.cause, services = ?services, "Value changed");
                    let due = Instant::now() + self.cfg.debounce;
                    for s in &services {
                        let p = self.pending.entry(s.clone()).or_insert_with(|| Pending { due, changes: Vec::new() });
                        p.changes.push(PendingChange {
                            change: change.clone(),
                            event_id: event_id.clone(),
                            message_id: msg.id.clone(),
                        });
                    }
                    let t = self.tracked.entry(msg.id.clone()).or_insert_with(|| Tracked {
                        handle: msg.handle.clone(),
                        receive_count: msg.receive_count,
                        outstanding: BTreeSet::new(),
                        failed: false,
                    });
                    t.handle = msg.handle.clone();
                    t.receive_count = msg.receive_count;
                    t.outstanding.extend(services);
                }
            }
        }
        self.delete(delete_now.into_iter().map(|m| (m.id, m.handle)).collect()).await;
        if self.cfg.debounce.is_zero() {
            self.flush_due().await;
        }
    }

    /// Redeploys every service whose debounce window has closed.
    async fn flush_due(&mut self) {
        let now_i = Instant::now();
        let due: Vec<String> = self.pending.iter().filter(|(_, p)| p.due <= now_i).map(|(s, _)| s.clone()).collect();
        if due.is_empty() {
            return;
        }
        let defs: Vec<ServiceDef> = due.iter().filter_map(|s| self.desired.services.get(s).cloned()).collect();
        let observed = match describe(&self.rec.aws, &defs).await {
            Ok(o) => o,
            Err(e) => {
                warn!(error = %e, "Could not read services for redeploys; retrying shortly");
                for s in &due {
                    if let Some(p) = self.pending.get_mut(s) {
                        p.due = Instant::now() + Duration::from_secs(2);
                    }
                }
                return;
            }
        };
        let mut last_changes = BTreeMap::new();
        for name in due {
            let Some(p) = self.pending.remove(&name) else { continue };
            let outcome = self.redeploy_for_changes(&name, &p, &observed, &mut last_changes).await;
            if let Ok(served_by) = outcome {
                // The stale backstop must not answer these changes again. A new
                // deployment started after they were announced: an event stamped T
                // (whole seconds) was sent before T + 1, and its changes are no later.
                // One that started earlier answers only what came before its start.
                let announced = p.changes.iter().filter_map(|c| c.change.at).fold(f64::MIN, f64::max) + 1.0;
                let latest = served_by.map_or(announced, |start| start.min(announced));
                let answered = self.stale_answered.entry(name.clone()).or_insert(f64::MIN);
                *answered = answered.max(latest);
            }
            for pc in &p.changes {
                if let Some(t) = self.tracked.get_mut(&pc.message_id) {
                    match outcome {
                        Ok(_) => {
                            t.outstanding.remove(&name);
                        }
                        Err(()) => t.failed = true,
                    }
                }
                if outcome.is_ok() {
                    self.handled.insert((pc.event_id.clone(), name.clone()));
                }
            }
        }
        // Delete what is fully done; send failed messages back with a delay.
        let done: Vec<(String, String)> = self
            .tracked
            .iter()
            .filter(|(_, t)| t.outstanding.is_empty() && !t.failed)
            .map(|(id, t)| (id.clone(), t.handle.clone()))
            .collect();
        let failed: Vec<(String, String, u32)> = self
            .tracked
            .iter()
            .filter(|(id, t)| {
                t.failed && !self.pending.values().any(|p| p.changes.iter().any(|c| &c.message_id == *id))
            })
            .map(|(id, t)| (id.clone(), t.handle.clone(), t.receive_count))
            .collect();
        for (id, _) in &done {
            self.tracked.remove(id);
        }
        self.delete(done).await;
        for (id, handle, receives) in failed {
            self.tracked.remove(&id);
            let delay = (self.cfg.failure_backoff * receives.max(1)).min(Duration::from_secs(900));
            self.return_to_queue(&handle, delay).await;
            warn!(message = %id, receives, retry_in = ?delay, "Redeploy failed; the message stays on the queue");
        }
    }

    /// Whether a deployment that started at `start` already serves every
    /// change. Event times are whole seconds: for a deployment that started
    /// within an event's second, the values' precise last-change times are
    /// read (once per flush, in `last_changes`) to tell.
    async fn serves_all(
        &self,
        start: f64,
        changes: &[PendingChange],
        last_changes: &mut BTreeMap<ChangedValue, Option<f64>>,
    ) -> bool {
        let at: Vec<(f64, &ChangedValue)> =
            changes.iter().map(|c| (c.change.at.unwrap_or_else(now), &c.change.value)).collect();
        if at.iter().any(|(t, _)| !started_after(start, *t) && !needs_last_change(start, *t)) {
            return false;
        }
        let unread: BTreeSet<ChangedValue> = at
            .iter()
            .filter(|(t, v)| needs_last_change(start, *t) && !last_changes.contains_key(*v))
            .map(|(_, v)| (*v).clone())
            .collect();
        if !unread.is_empty() {
            let read = crate::aws::observe::last_change_times(&self.rec.aws, &unread, self.cfg.concurrency).await;
            for v in unread {
                let t = read.get(&v).copied();
                last_changes.insert(v, t);
            }
        }
        at.iter().all(|(t, v)| serves_event(start, *t, last_changes.get(*v).copied().flatten()))
    }

    /// Redeploys one service for its pending changes, unless its newest
    /// deployment already serves them: then `Ok(Some(start))`, that deployment's
    /// start. `Ok(None)`: redeployed, or nothing to do.
    async fn redeploy_for_changes(
        &self,
        name: &str,
        p: &Pending,
        observed: &BTreeMap<String, ObservedService>,
        last_changes: &mut BTreeMap<ChangedValue, Option<f64>>,
    ) -> Result<Option<f64>, ()> {
        let m = &self.shared.metrics;
        let Some(def) = self.desired.services.get(name) else { return Ok(None) };
        let key = ObjectKey::new(Kind::Service, name);
        let Some(svc) = observed.get(name) else {
            warn!(service = %name, "Service not found; cannot redeploy");
            self.shared.board().object(&key).set("Synced", false, "RedeployFailed", "service not found");
            m.errors.get_or_create(&ResultLabels { result: "redeploy".into() }).inc();
            return Err(());
        };
        if svc.deployment_controller != "ECS" {
            // Not retried forever: reported, and the message is done.
            let msg =
                format!("uses the {} deployment controller; force a deployment through it", svc.deployment_controller);
            warn!(service = %name, "{msg}");
            self.shared.board().object(&key).set("Synced", false, "UnsupportedDeploymentController", &msg);
            m.events.get_or_create(&OutcomeLabels { outcome: "unsupported_service".into() }).inc();
            return Ok(None);
        }
        if let Some(start) = svc.newest_deployment_start()
            && self.serves_all(start, &p.changes, last_changes).await
        {
            info!(service = %name, "Already deployed after the change: no redeploy");
            m.events.get_or_create(&OutcomeLabels { outcome: "fresh".into() }).inc();
            return Ok(Some(start));
        }
        let causes: BTreeSet<String> =
            p.changes.iter().map(|c| format!("{} ({})", c.change.value, c.change.cause)).collect();
        let trigger = causes.into_iter().collect::<Vec<_>>().join(", ");
        match self.redeploy(&def.name, svc.primary_deployment(), "rotation", &trigger).await {
            Ok(()) => Ok(None),
            Err(e) => {
                warn!(service = %name, error = %e, "Redeploy failed");
                self.shared.board().object(&key).set("Synced", false, "RedeployFailed", &e.to_string());
                m.errors.get_or_create(&ResultLabels { result: "redeploy".into() }).inc();
                Err(())
            }
        }
    }

    /// On shutdown: messages held for a debounce window go back to the queue
    /// now (visibility 0), undeleted, so the next controller acts on them at once.
    async fn release_held(&mut self) {
        let held: Vec<String> = self.tracked.values().map(|t| t.handle.clone()).collect();
        for handle in &held {
            self.return_to_queue(handle, Duration::ZERO).await;
        }
        info!(messages_returned_to_queue = held.len(), "Stopped");
    }

    /// Makes a received message visible again after `delay`, undeleted. If this
    /// fails, it comes back when its visibility timeout ends anyway.
    async fn return_to_queue(&self, handle: &str, delay: Duration) {
        let Some(q) = &self.queue else { return };
        let res = self
            .rec
            .aws
            .sqs
            .change_message_visibility()
            .queue_url(q)
            .receipt_handle(handle)
            .visibility_timeout(delay.as_secs().min(43_200) as i32)
            .send()
            .await;
        if let Err(e) = res {
            debug!(error = %classify("ChangeMessageVisibility", e), "Message returns after its visibility timeout instead");
        }
    }

    async fn delete(&self, msgs: Vec<(String, String)>) {
        let Some(q) = &self.queue else { return };
        for chunk in msgs.chunks(10) {
            let entries: Vec<DeleteMessageBatchRequestEntry> = chunk
                .iter()
                .enumerate()
                .filter_map(|(i, (_, h))| {
                    DeleteMessageBatchRequestEntry::builder().id(i.to_string()).receipt_handle(h).build().ok()
                })
                .collect();
            if let Err(e) = self.rec.aws.sqs.delete_message_batch().queue_url(q).set_entries(Some(entries)).send().await
            {
                // Not deleted: it comes back and is found fresh or already handled.
                warn!(error = %classify("DeleteMessageBatch", e), "Could not delete handled messages");
            }
        }
    }
}

/// Moves an object's last good version from `old` into `new`; false if `old` has none.
fn carry_over(old: &mut Desired, new: &mut Desired, key: &ObjectKey) -> bool {
    match key.kind {
        Kind::Parameter => old.parameters.remove_entry(&key.name).map(|(k, v)| new.parameters.insert(k, v)).is_some(),
        Kind::Secret => old.secrets.remove_entry(&key.name).map(|(k, v)| new.secrets.insert(k, v)).is_some(),
        Kind::Service => old.services.remove_entry(&key.name).map(|(k, v)| new.services.insert(k, v)).is_some(),
    }
}

fn keys(d: &Desired) -> BTreeSet<ObjectKey> {
    d.parameters
        .keys()
        .map(|n| ObjectKey::new(Kind::Parameter, n))
        .chain(d.secrets.keys().map(|n| ObjectKey::new(Kind::Secret, n)))
        .chain(d.services.keys().map(|n| ObjectKey::new(Kind::Service, n)))
        .collect()
}

fn secret_arns(o: &Observed) -> BTreeMap<String, String> {
    o.secrets.iter().map(|(k, s)| (k.clone(), s.arn.clone())).collect()
}

/// The latest change time among the service's unpinned values, and which value.
fn newest_value_change(svc: &ServiceDef, o: &Observed) -> Option<(f64, String)> {
    svc.value_refs()
        .filter(|r| !r.is_pinned())
        .filter_map(|r| match r {
            ValueRef::Parameter { name } => {
                o.parameters.get(name).and_then(|p| p.last_modified).map(|t| (t, format!("parameter {name}")))
            }
            ValueRef::Secret { id, .. } => {
                o.secrets.get(id).and_then(|s| s.last_changed).map(|t| (t, format!("secret {id}")))
            }
            ValueRef::Raw { target: crate::arn::RawTarget::Secret(s), .. } => o
                .secrets
                .get(&s.secret_arn)
                .and_then(|x| x.last_changed)
                .map(|t| (t, format!("secret {}", s.secret_arn))),
            ValueRef::Raw { target: crate::arn::RawTarget::Parameter { name, .. }, .. } => {
                o.parameters.get(name).and_then(|p| p.last_modified).map(|t| (t, format!("parameter {name}")))
            }
        })
        .max_by(|a, b| a.0.total_cmp(&b.0))
}

/// DescribeServices for the given services (by cluster, 10 at a time), by manifest name.
async fn describe(aws: &Aws, defs: &[ServiceDef]) -> Result<BTreeMap<String, ObservedService>, AwsError> {
    let mut desired = Desired::default();
    for d in defs {
        desired.services.insert(d.name.clone(), d.clone());
    }
    let by_key = crate::aws::observe::describe_services(aws, &desired).await?;
    Ok(defs
        .iter()
        .filter_map(|d| by_key.get(&(d.cluster.clone(), d.service_name.clone())).map(|s| (d.name.clone(), s.clone())))
        .collect())
}
