//! `secretwire run`: the long-lived controller. Level-triggered: every pass
//! rebuilds from observed state (startup, `--resync-interval`, manifest
//! changes, retries after transient failures); events only add work. A
//! rotation event becomes a forced deployment of exactly the services that
//! read the value, coalesced per service within `--debounce`, and its SQS
//! message is deleted only when every redeploy it asked for is done or found
//! unnecessary.
//!
//! One room per concern: this file sets up and runs the select loop (it only
//! selects and dispatches); `controller` carries each input to the rooms and
//! their actions out; `debounce` (pure) decides redeploys and
//! acknowledgements; `holds` (pure) is the error policy; `backstop` (pure)
//! finds stale services; `redeploy` decides rotation redeploys; `rollouts`
//! starts them (within `--max-parallel-rollouts`) and follows every
//! deployment to its end; `reload` watches the manifests; `status` is the
//! board `http` serves.

mod backstop;
mod controller;
mod debounce;
mod holds;
mod http;
pub mod leader;
mod lease;
mod redeploy;
mod reload;
mod rollouts;
pub mod status;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::Retryable;
use tokio::sync::{mpsc, watch};
use tracing::info;

use crate::aws::queue::{Message, Queue};
use crate::aws::retry::Backoff;
use crate::aws::{Aws, AwsError};
use crate::metrics::Metrics;
use controller::Controller;
use status::Shared;

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
    /// An object whose writes failed terminally is not retried for this long
    /// (unless what it would write changes).
    pub terminal_retry: Duration,
    /// A rollout not ended within this is reported timed out.
    pub rollout_timeout: Duration,
    /// Deployments in progress at once, at most (the rest wait in order).
    pub max_parallel_rollouts: usize,
    pub notify: crate::notify::Sinks,
    /// `--prune`, `--max-prune`.
    pub prune: crate::reconcile::PruneMode,
    /// What the platform imposes on every object (`--permissions-boundary`).
    pub platform: crate::model::Platform,
    /// `--tenants`: read once at start; every reload holds the manifests to it.
    pub tenants: Option<std::sync::Arc<crate::manifest::tenant::Tenants>>,
    /// `--lease dynamodb:TABLE`: lead only while holding the lease in TABLE.
    pub lease: Option<String>,
    pub lease_timing: leader::LeaseTiming,
}

/// Wall-clock seconds since the epoch (event and deployment times are on it).
pub(crate) use crate::follow::now;

/// Runs until SIGTERM/SIGINT; returns once in-flight work is finished.
pub async fn run(cfg: RunConfig, metrics: Arc<Metrics>, limits: crate::aws::limit::RateLimits) -> anyhow::Result<()> {
    let aws = Aws::connect(metrics.clone(), limits.clone()).await?;
    let shared = Arc::new(Shared::new(metrics));
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
        axum::serve(listener, http::router(shared.clone()))
            .with_graceful_shutdown(async move {
                let _ = http_stop.wait_for(|s| *s).await;
            })
            .into_future(),
    );

    // With a lease, nothing below runs until this replica leads.
    let lease = match &cfg.lease {
        Some(table) => {
            let t = crate::aws::lease::LeaseTable {
                aws: aws.clone(),
                table: table.clone(),
                key: cfg.controller_id.clone(),
            };
            match lease::Lease::standby(t, cfg.lease_timing, &shared, stop_rx.clone()).await? {
                Some(l) => Some(l),
                None => {
                    let _ = server.await;
                    return Ok(());
                }
            }
        }
        None => {
            shared.board().leader = true;
            None
        }
    };
    let (_never, never_lost) = watch::channel(false);
    let mut lost = lease.as_ref().map_or(never_lost, |l| l.lost());
    if let Some(l) = &lease {
        l.spawn_renewer();
    }

    let (url, arn) = match &cfg.events {
        EventsMode::Ensure => {
            // Transient failures (throttling, 5xx) at startup are ridden out, not fatal.
            let ensure = || crate::aws::plumbing::ensure(&aws, &cfg.controller_id, cfg.max_receives, &[]);
            let (url, arn) = ensure.retry(Backoff::CALL).when(|e: &AwsError| e.transient).await?;
            (Some(url), Some(arn))
        }
        EventsMode::Queue(u) => (Some(u.clone()), None),
        EventsMode::Off => (None, None),
    };
    shared.board().events_queue = url.clone();
    let queue = url.map(|url| Queue { aws: aws.clone(), url, arn });
    let (msg_tx, mut msg_rx) = mpsc::channel::<Vec<Message>>(4);
    if let Some(q) = &queue {
        // A message held for its debounce window must not come back meanwhile.
        let visibility = cfg.visibility.max(cfg.debounce + Duration::from_secs(1));
        tokio::spawn(q.clone().receive(visibility, msg_tx, stop_rx.clone()));
        info!(queue = %q.url, "Listening for rotation events");
    }

    let notifier = crate::notify::Notifier::start(cfg.notify.clone(), aws.clone(), shared.metrics.clone());
    let mut ctl = Controller::new(cfg, aws, shared.clone(), queue, notifier, lease.clone(), limits.clone());
    ctl.start().await;

    let mut stop = stop_rx.clone();
    let resync_every = ctl.resync_interval();
    let mut resync = tokio::time::interval_at(tokio::time::Instant::now() + resync_every, resync_every);
    resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut watch_tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        let (flush_at, retry_at, rollout_at) = (ctl.next_due(), ctl.retry_at(), ctl.rollout_wake());
        tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => break,
            _ = lost.wait_for(|l| *l) => {
                tracing::error!("Lost the lease: another replica may lead now; exiting so that only one writes");
                anyhow::bail!("lost the lease");
            }
            Some(batch) = msg_rx.recv() => ctl.on_messages(batch).await,
            _ = sleep_until(flush_at), if flush_at.is_some() => ctl.on_due().await,
            _ = watch_tick.tick() => ctl.on_watch_tick().await,
            _ = resync.tick() => ctl.pass("resync").await,
            _ = sleep_until(retry_at), if retry_at.is_some() => ctl.pass("retry").await,
            _ = sleep_until(rollout_at), if rollout_at.is_some() => ctl.on_rollout_wake().await,
        }
    }
    ctl.shutdown().await;
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
