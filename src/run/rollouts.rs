//! The rollouts room: starts the redeploys the tracker admits, follows every
//! deployment secretwire started (its wake-ups read the due ones with
//! DescribeServices by ten; ECS deployment events from the queue make one due
//! at once), and carries each end out: the status conditions, the metrics,
//! the log line, the notification and, for a failure, the diagnosis (the
//! deployment's stopped tasks, read once, tied to the manifest reference they
//! name). With no rollout open it makes no call.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use tracing::{error, info, warn};

use super::now;
use super::status::{Redeploy, Shared};
use crate::aws::{Aws, AwsError};
use crate::events::{DeploymentEvent, format_rfc3339};
use crate::fleet::AwsFor;
use crate::metrics::{OutcomeLabels, ReasonLabels};
use crate::model::{Desired, Kind, ObjectKey};
use crate::notify::{Notification, Notifier};
use crate::observed::Observed;
use crate::rollout::diagnose::Diagnosis;
use crate::rollout::tracker::{Effect, Tracker, Waiting};
use crate::rollout::{Ended, Outcome, Started, Trigger};

/// What the room reads and writes besides its own state.
pub(super) struct Ctx<'a> {
    /// Each service's clients (its Target's, else the controller's own).
    pub clients: &'a dyn AwsFor,
    pub desired: &'a Desired,
    pub shared: &'a Shared,
    /// The last pass's observation, for diagnoses.
    pub observed: Option<&'a Observed>,
}

impl Ctx<'_> {
    pub fn aws(&self, service: &str) -> &Aws {
        self.clients.aws_for(service)
    }
}

/// What became of a requested redeploy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Requested {
    Started,
    /// Waits for a slot (`--max-parallel-rollouts`).
    Queued,
}

pub(super) struct Rollouts {
    tracker: Tracker,
    notifier: Notifier,
    controller_id: String,
    /// The newest service events seen per service, for diagnoses.
    service_events: HashMap<String, Vec<(f64, String)>>,
}

fn key(service: &str) -> ObjectKey {
    ObjectKey::new(Kind::Service, service)
}

impl Rollouts {
    pub fn new(tracker: Tracker, notifier: Notifier, controller_id: String) -> Self {
        Self { tracker, notifier, controller_id, service_events: HashMap::new() }
    }

    pub fn next_wake(&self) -> Option<Instant> {
        self.tracker.next_wake()
    }

    /// Whether the stale backstop must leave the service alone (it waits or is held).
    pub fn holds(&self, service: &str) -> bool {
        self.tracker.holds(service)
    }

    /// A redeploy is wanted: started now if a slot is free, else it waits in order.
    pub async fn request(&mut self, ctx: &Ctx<'_>, w: Waiting) -> Result<Requested, AwsError> {
        match self.tracker.admit(w.clone()) {
            Some(w) => {
                let effects = self.start(ctx, &w).await?;
                self.carry(ctx, effects).await;
                Ok(Requested::Started)
            }
            None => {
                info!(service = %w.service, trigger = w.trigger.as_str(), in_progress = self.tracker.in_progress(), "Redeploy waits for a rollout slot");
                ctx.shared.board().object(&key(&w.service), now()).rollout_waiting(&w, now());
                Ok(Requested::Queued)
            }
        }
    }

    /// Forces the deployment of `w` and follows it.
    async fn start(&mut self, ctx: &Ctx<'_>, w: &Waiting) -> Result<Vec<Effect>, AwsError> {
        let Some(def) = ctx.desired.services.get(&w.service) else { return Ok(Vec::new()) };
        let deployment = crate::aws::write::force_new_deployment(
            ctx.aws(&w.service),
            &def.cluster,
            &def.service_name,
            w.before.as_deref(),
        )
        .await?;
        let reason = w.trigger.as_str();
        ctx.shared.metrics.redeploys.get_or_create(&ReasonLabels { reason: reason.into() }).inc();
        {
            let mut board = ctx.shared.board();
            let st = board.object(&key(&w.service), now());
            st.redeploys += 1;
            st.last_redeploy = Some(Redeploy {
                at: format_rfc3339(now()),
                reason,
                trigger: w.detail.clone(),
                deployment_id: deployment.clone(),
            });
        }
        info!(service = %w.service, reason, trigger = %w.detail, deployment = deployment.as_deref().unwrap_or("?"), "Forced a new deployment");
        let Some(id) = deployment else {
            warn!(service = %w.service, "UpdateService named no PRIMARY deployment: this rollout cannot be followed");
            return Ok(Vec::new());
        };
        let tag = crate::rollout::tag_value(&id, w.trigger, now());
        crate::aws::write::record_rollout(ctx.aws(&w.service), &def.cluster, &def.service_name, &tag).await;
        Ok(self.opened(
            ctx.shared,
            Started {
                service: w.service.clone(),
                cluster: def.cluster.clone(),
                service_name: def.service_name.clone(),
                deployment_id: id,
                trigger: w.trigger,
                detail: w.detail.clone(),
                at: now(),
                wave: w.wave.clone(),
            },
        ))
    }

    /// A deployment started (apply's UpdateService, or a redeploy): followed from now on.
    pub fn opened(&mut self, shared: &Shared, s: Started) -> Vec<Effect> {
        self.notifier.send(Notification::started(&s, &self.controller_id));
        self.follow(shared, s)
    }

    /// At startup: the last deployment secretwire started for each service
    /// before a restart (service tag `secretwire.dev/rollout`) is followed
    /// again if it is still in progress, and its outcome put back on the
    /// status if it ended meanwhile (so Degraded survives a restart). No
    /// notification is sent again for either: it may have been sent before.
    pub async fn resume(&mut self, ctx: &Ctx<'_>, observed: &Observed) -> Vec<String> {
        let mut effects = Vec::new();
        for (name, def) in &ctx.desired.services {
            let Some(svc) = observed.services.get(&def.observed_key()) else { continue };
            let (id, trigger, at) = match svc.rollout.as_deref().and_then(crate::rollout::recorded) {
                Some(crate::rollout::Recorded::Deployment { id, trigger, at }) => (id, trigger, at),
                Some(crate::rollout::Recorded::Held { at, failed }) => {
                    let why = format!(
                        "held since {} (before the controller restarted): the rollout of {failed} for the same change failed; a new change releases it",
                        crate::events::format_rfc3339(at)
                    );
                    let w = Waiting {
                        service: name.clone(),
                        trigger: Trigger::Rotation,
                        detail: String::new(),
                        before: None,
                        wave: None,
                        since: at,
                        held: Some(why),
                        failed: Some(failed),
                    };
                    ctx.shared.board().object(&key(name), now()).rollout_waiting(&w, now());
                    continue;
                }
                None => continue,
            };
            let sighting = crate::rollout::judge::judge(&id, Some(svc));
            let started = Started {
                service: name.clone(),
                cluster: def.cluster.clone(),
                service_name: def.service_name.clone(),
                deployment_id: id.clone(),
                trigger,
                detail: "started before the controller restarted".into(),
                at,
                wave: None,
            };
            match sighting {
                crate::rollout::judge::Sighting::InProgress(_) => {}
                crate::rollout::judge::Sighting::Ended { outcome: Outcome::Superseded, .. } => continue,
                crate::rollout::judge::Sighting::Ended { outcome, reason, progress } => {
                    ctx.shared.board().object(&key(name), now()).rollout_started(&started, now());
                    let e = Ended { started, outcome, reason, at: now(), progress };
                    self.record(ctx, e, false).await;
                    continue;
                }
            }
            info!(service = %name, deployment = %id, trigger = trigger.as_str(), "Following a rollout started before a restart");
            effects.extend(self.follow(ctx.shared, started));
        }
        self.carry(ctx, effects).await
    }

    fn follow(&mut self, shared: &Shared, s: Started) -> Vec<Effect> {
        shared.board().object(&key(&s.service), now()).rollout_started(&s, now());
        let effects = self.tracker.open(s, Instant::now(), now());
        shared.metrics.rollouts_in_progress.set(self.tracker.in_progress() as i64);
        effects
    }

    /// Carries the tracker's effects out. Returns the services whose start
    /// failed (the caller lets the stale backstop pick them up again).
    pub async fn carry(&mut self, ctx: &Ctx<'_>, effects: Vec<Effect>) -> Vec<String> {
        let mut todo = VecDeque::from(effects);
        let mut failed = Vec::new();
        while let Some(effect) = todo.pop_front() {
            match effect {
                Effect::Ended(e) => self.record(ctx, e, true).await,
                Effect::Start(w) => match self.start(ctx, &w).await {
                    Ok(more) => todo.extend(more),
                    Err(e) => {
                        warn!(service = %w.service, error = %e, "Redeploy that waited for a slot failed");
                        failed.push(w.service.clone());
                    }
                },
                Effect::Held(w) => {
                    warn!(service = %w.service, why = w.held.as_deref().unwrap_or_default(), "Redeploy held");
                    ctx.shared.board().object(&key(&w.service), now()).rollout_waiting(&w, now());
                    // Recorded on the service, so the stale backstop of a restarted
                    // controller does not redeploy what the wave holds.
                    if let (Some(def), Some(failed)) = (ctx.desired.services.get(&w.service), &w.failed) {
                        let tag = crate::rollout::held_tag_value(now(), failed);
                        crate::aws::write::record_rollout(ctx.aws(&w.service), &def.cluster, &def.service_name, &tag)
                            .await;
                    }
                }
            }
        }
        ctx.shared.metrics.rollouts_in_progress.set(self.tracker.in_progress() as i64);
        failed
    }

    /// An ECS deployment event from the queue.
    pub async fn on_event(&mut self, ctx: &Ctx<'_>, ev: &DeploymentEvent) -> Vec<String> {
        let effects = self.tracker.event(ev, Instant::now(), now());
        self.carry(ctx, effects).await
    }

    /// Ends timed-out rollouts and reads the due ones (DescribeServices by ten).
    pub async fn wake(&mut self, ctx: &Ctx<'_>) -> Vec<String> {
        let read = crate::follow::read_due(ctx.clients, &mut self.tracker).await;
        self.service_events.extend(read.events);
        for (service, p) in read.progress {
            ctx.shared.board().object(&key(&service), now()).rollout_progress(p);
        }
        self.carry(ctx, read.effects).await
    }

    /// After a pass: a failed or held service that someone deployed by hand
    /// (its newest deployment is not ours, not a rollback, and newer than
    /// our last) is no longer Degraded, and its held redeploy is dropped.
    pub fn after_pass(&mut self, ctx: &Ctx<'_>, observed: &Observed) {
        let mut board = ctx.shared.board();
        for (name, def) in &ctx.desired.services {
            let Some(st) = board.objects.get_mut(&key(name).to_string()) else { continue };
            let degraded = st
                .condition(super::status::ConditionType::Degraded)
                .is_some_and(|c| c.status == super::status::ConditionStatus::True);
            let Some(last) = st.last_rollout.as_ref().filter(|_| degraded) else { continue };
            let Some(svc) = observed.services.get(&def.observed_key()) else { continue };
            let started = crate::events::parse_rfc3339(&last.started).unwrap_or(f64::MAX);
            let manual = svc.deployments.iter().find(|d| {
                d.id != last.deployment_id
                    && d.created_at.is_some_and(|t| t > started)
                    && !d.rollout_state_reason.as_deref().is_some_and(|r| r.starts_with(crate::events::ROLLBACK_REASON))
                    && d.status == "PRIMARY"
            });
            if let Some(d) = manual
                && !self.tracker.open_rollouts().any(|(s, _)| s.deployment_id == d.id)
            {
                info!(service = %name, deployment = %d.id, "A deployment secretwire did not start replaced the failed one");
                st.manually_deployed(&d.id, now());
                self.tracker.release(name);
            }
        }
    }

    /// A rollout ended: status, metrics, log and (`notify`) the notification.
    async fn record(&mut self, ctx: &Ctx<'_>, e: Ended, notify: bool) {
        let diagnosis = if e.outcome.failed() { self.diagnose(ctx, &e).await } else { None };
        // Events are kept only while they may explain a rollout that is still open.
        self.service_events.remove(&e.started.service);
        let m = &ctx.shared.metrics;
        m.rollouts.get_or_create(&OutcomeLabels { outcome: e.outcome.label().into() }).inc();
        m.rollout_seconds.observe(e.duration());
        let s = &e.started;
        match e.outcome {
            Outcome::Completed => {
                info!(service = %s.service, deployment = %s.deployment_id, trigger = s.trigger.as_str(), seconds = e.duration() as u64, "Rollout completed")
            }
            Outcome::Superseded => {
                info!(service = %s.service, deployment = %s.deployment_id, why = %e.reason, "Rollout superseded")
            }
            _ => error!(
                service = %s.service,
                deployment = %s.deployment_id,
                trigger = s.trigger.as_str(),
                outcome = e.outcome.label(),
                reason = %diagnosis.as_ref().map_or(e.reason.as_str(), |d| d.ecs_reason.as_str()),
                cause = diagnosis.as_ref().and_then(|d| d.cause.as_deref()).unwrap_or("unknown"),
                "Rollout failed"
            ),
        }
        ctx.shared.board().object(&key(&s.service), now()).rollout_ended(&e, diagnosis.clone(), now());
        if let Some(n) = Notification::ended(&e, diagnosis.as_ref(), &self.controller_id).filter(|_| notify) {
            self.notifier.send(n);
        }
    }

    async fn diagnose(&self, ctx: &Ctx<'_>, e: &Ended) -> Option<Diagnosis> {
        let events = self.service_events.get(&e.started.service).map(Vec::as_slice).unwrap_or_default();
        crate::follow::diagnose(ctx.aws(&e.started.service), ctx.desired, ctx.observed, e, events).await
    }
}

/// A rotation or stale redeploy, as the tracker queues it.
pub(super) fn waiting(
    service: &str,
    trigger: Trigger,
    detail: String,
    before: Option<String>,
    wave: String,
) -> Waiting {
    Waiting {
        service: service.to_string(),
        trigger,
        detail,
        before,
        wave: Some(wave),
        since: now(),
        held: None,
        failed: None,
    }
}
