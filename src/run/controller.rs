//! Carries each input of the select loop to the rooms and their actions out:
//! a pass (reconcile, status, holds, stale backstop), a batch of messages
//! (read once, matched to readers, debounced), a closed window (redeploys),
//! a manifest change (reload, pass), shutdown (held messages returned).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{debug, error, info, warn};

use super::backstop::Backstop;
use super::debounce::{Action, Debouncer, Input, Outcome, Received};
use super::holds::Holds;
use super::redeploy::Redeployer;
use super::reload::{Manifests, keys};
use super::rollouts::{Ctx, Rollouts, waiting};
use super::status::{ConditionType, PassOutcome, PruneStatus, Shared, Verdict, verdicts};
use super::{RunConfig, now};
use crate::aws::Aws;
use crate::aws::queue::{Message, Queue, Receipt};
use crate::aws::retry::Backoff;
use crate::events::{Parsed, ValueIndex, format_rfc3339};
use crate::fleet::Fleet;
use crate::metrics::{OutcomeLabels, ResultLabels};
use crate::observed::Observed;
use crate::plan::{ObjectPlan, Op};
use crate::reason::{Failure, Reason};
use crate::reconcile::{ApplyReport, Reconciler};
use crate::rollout::Trigger;
use crate::rollout::tracker::Tracker;

/// The rollouts room's view of the controller (disjoint field borrows).
macro_rules! ctx {
    ($s:ident) => {
        Ctx {
            clients: &crate::fleet::ByService { fleet: &$s.fleet, desired: &$s.manifests.desired },
            desired: &$s.manifests.desired,
            shared: &$s.shared,
            observed: $s.last_observed.as_ref(),
        }
    };
}

pub(super) struct Controller {
    cfg: RunConfig,
    /// The controller's own account and each Target's, one reconciler each.
    fleet: Fleet,
    /// Each Target gets its own limiter with these limits.
    limits: crate::aws::limit::RateLimits,
    shared: Arc<Shared>,
    queue: Option<Queue>,
    manifests: Manifests,
    index: ValueIndex,
    debounce: Debouncer,
    backstop: Backstop,
    holds: Holds,
    /// Passes in a row that failed before any change (the account could not be read).
    pass_failures: u32,
    /// When the next retry pass runs.
    retry_at: Option<Instant>,
    /// Redeploy batches in a row whose services could not be read.
    unread: u32,
    rollouts: Rollouts,
    /// The last pass's observation (for diagnoses of failed rollouts).
    last_observed: Option<Observed>,
    /// `--lease`: every batch of writes is fenced by it.
    lease: Option<Arc<super::lease::Lease>>,
    /// Targets whose events are forwarded to the queue (secretwire's own queue only).
    forwarding: BTreeMap<String, crate::aws::forward::Forwarding>,
}

impl Controller {
    pub fn new(
        cfg: RunConfig,
        aws: Aws,
        shared: Arc<Shared>,
        queue: Option<Queue>,
        notifier: crate::notify::Notifier,
        lease: Option<Arc<super::lease::Lease>>,
        limits: crate::aws::limit::RateLimits,
    ) -> Self {
        let rec = Reconciler {
            aws,
            controller_id: cfg.controller_id.clone(),
            concurrency: cfg.concurrency,
            cache: Default::default(),
            slow: Arc::new(crate::aws::observe::SlowCache::new(cfg.reverify)),
            prune: cfg.prune,
        };
        Self {
            manifests: Manifests::new(cfg.dir.clone(), cfg.platform.clone(), cfg.tenants.clone()),
            index: ValueIndex::default(),
            debounce: Debouncer::new(cfg.debounce, cfg.failure_backoff),
            backstop: Backstop::default(),
            holds: Holds::new(cfg.resync, cfg.terminal_retry),
            pass_failures: 0,
            retry_at: None,
            unread: 0,
            rollouts: Rollouts::new(
                Tracker::new(cfg.rollout_timeout, cfg.max_parallel_rollouts),
                notifier,
                cfg.controller_id.clone(),
            ),
            last_observed: None,
            lease,
            forwarding: BTreeMap::new(),
            cfg,
            fleet: Fleet { members: vec![crate::fleet::Member { target: None, reconciler: Ok(rec) }] },
            limits,
            shared,
            queue,
        }
    }

    pub fn resync_interval(&self) -> Duration {
        self.cfg.resync
    }

    pub fn next_due(&self) -> Option<Instant> {
        self.debounce.next_due()
    }

    pub fn retry_at(&self) -> Option<Instant> {
        self.retry_at
    }

    /// When an open rollout is next read (or times out); `None` with none open.
    pub fn rollout_wake(&self) -> Option<Instant> {
        self.rollouts.next_wake()
    }

    pub async fn on_rollout_wake(&mut self) {
        let failed = self.rollouts.wake(&ctx!(self)).await;
        self.start_failed(failed);
    }

    /// Redeploys that waited for a slot and could not be started: the stale
    /// backstop picks them up at the next pass.
    fn start_failed(&mut self, services: Vec<String>) {
        for s in services {
            self.backstop.forget(&s);
            self.shared.metrics.errors.get_or_create(&ResultLabels { result: "redeploy".into() }).inc();
        }
    }

    /// Loads the manifests and makes the first full pass; then the controller is ready.
    pub async fn start(&mut self) {
        self.reload();
        self.pass("startup").await;
        // The one place readiness is decided: /readyz, /status and this line read it.
        self.shared.board().ready = true;
        info!("Ready");
    }

    pub async fn on_watch_tick(&mut self) {
        if self.manifests.changed().await {
            self.reload();
            self.pass("manifest change").await;
        }
    }

    fn reload(&mut self) {
        let r = self.manifests.reload();
        for d in &r.diagnostics {
            warn!(diagnostic = %d, "Invalid manifest");
        }
        let t = now();
        let mut board = self.shared.board();
        board.manifest_errors = r.diagnostics;
        for (key, kept) in &r.invalid {
            let msg = match (r.refused.contains(key), *kept) {
                (false, true) => "manifest is invalid; keeping the last good version",
                (false, false) => "manifest is invalid; not applied",
                (true, true) => "refused by a tenant rule; keeping the last good version",
                (true, false) => "refused by a tenant rule; not applied",
            };
            board.object(key, t).set(
                ConditionType::Ready,
                &Verdict { ok: false, reason: Reason::InvalidManifest, message: msg.into() },
                t,
            );
        }
        for gone in &r.removed {
            warn!(kind = %gone.kind, name = %gone.name, "Removed from the manifests; its AWS resources are left in place");
            self.shared.metrics.errors.get_or_create(&ResultLabels { result: "object_removed".into() }).inc();
            board.objects.remove(&gone.to_string());
        }
        drop(board);
        let declared = keys(&self.manifests.desired);
        self.holds.retain(|k| declared.contains(k));
    }

    /// A full level-triggered pass: apply (objects held by an earlier failure
    /// of the same writes excepted), status, then the stale backstop.
    /// Whether writes may go on: always without a lease; with one, a
    /// conditional renewal on this replica's generation (the fencing token).
    async fn fenced(&self) -> bool {
        match &self.lease {
            Some(l) => l.fence().await,
            None => true,
        }
    }

    pub async fn pass(&mut self, why: &str) {
        if !self.fenced().await {
            // Tried again after one renewal interval (or never: a lost lease ends the process).
            let again = self.cfg.lease_timing.renew;
            warn!(trigger = why, retry_in = ?again, "Pass deferred: this replica cannot prove it holds the lease");
            self.retry_at = Some(Instant::now() + again);
            return;
        }
        let started = Instant::now();
        debug!(trigger = why, "Reconcile pass");
        self.fleet.sync(&self.manifests.desired, &self.limits).await;
        self.forward_events().await;
        self.report_targets();
        let holds = &self.holds;
        let hold = |p: &ObjectPlan| {
            holds.holding(p, started).map(|h| {
                let left = h.until.saturating_duration_since(started).as_secs();
                let mut f = h.failure.clone();
                f.message = format!("{} (not sent again for {left} s unless the object's writes change)", f.message);
                f
            })
        };
        let result = self.fleet.apply_holding(&self.manifests.desired, &hold).await;
        let m = self.shared.metrics.clone();
        m.reconcile_seconds.observe(started.elapsed().as_secs_f64());
        self.retry_at = None;
        match result {
            Ok(report) => {
                self.pass_failures = 0;
                let failed = report.results.iter().any(|r| r.error.is_some() && !r.held);
                self.record(&report);
                let scopes = self
                    .fleet
                    .members
                    .iter()
                    .filter_map(|m| Some((m.target.clone()?, m.reconciler.as_ref().ok()?.aws.scope.clone())))
                    .collect();
                self.index = ValueIndex::build_in(&self.manifests.desired, &secret_arns(&report.observed), &scopes);
                let updated: BTreeSet<String> = report
                    .plan
                    .objects
                    .iter()
                    .filter(|o| o.changes.iter().flat_map(|c| &c.ops).any(|op| matches!(op, Op::UpdateService { .. })))
                    .map(|o| o.key.name.clone())
                    .collect();
                if self.last_observed.is_none() {
                    let ctx = Ctx {
                        clients: &crate::fleet::ByService { fleet: &self.fleet, desired: &self.manifests.desired },
                        desired: &self.manifests.desired,
                        shared: &self.shared,
                        observed: Some(&report.observed),
                    };
                    let failed = self.rollouts.resume(&ctx, &report.observed).await;
                    self.start_failed(failed);
                }
                self.follow_applied(&report).await;
                let stale_failed = self.stale_backstop(&report.observed, &updated).await;
                self.rollouts.after_pass(&ctx!(self), &report.observed);
                let result = if failed || stale_failed { "failed" } else { "ok" };
                m.reconciles.get_or_create(&ResultLabels { result: result.into() }).inc();
                self.retry_at = self.holds.next_retry(Instant::now());
                if stale_failed {
                    let at = Instant::now() + Backoff::object(self.cfg.resync).delay(0);
                    self.retry_at = Some(self.retry_at.map_or(at, |r| r.min(at)));
                }
                self.last_observed = Some(report.observed.for_diagnosis());
            }
            Err(e) => {
                let f = e.failure();
                error!(error = %f, reason = %f.reason, "Reconcile pass failed before any change");
                m.reconciles.get_or_create(&ResultLabels { result: "error".into() }).inc();
                m.errors.get_or_create(&ResultLabels { result: "observe".into() }).inc();
                if f.transient() {
                    let delay = Backoff::object(self.cfg.resync).delay(self.pass_failures);
                    self.pass_failures = self.pass_failures.saturating_add(1);
                    self.retry_at = Some(Instant::now() + delay);
                }
            }
        }
        self.shared.board().last_reconcile = Some(format_rfc3339(now()));
    }

    /// With the queue secretwire owns: every connected Target's rules forward
    /// its events here (set up once per Target; one that fails is tried
    /// again next pass, and its rotations are caught by the stale backstop
    /// meanwhile), and the queue policy and the bus allow them.
    async fn forward_events(&mut self) {
        let Some((url, arn)) = self.queue.as_ref().and_then(|q| Some((q.url.clone(), q.arn.clone()?))) else { return };
        let fleet = &self.fleet;
        self.forwarding.retain(|t, _| fleet.member(Some(t)).is_some());
        let home = &self.fleet.home().aws;
        let mut added = false;
        for m in self.fleet.members.iter().skip(1) {
            let (Some(t), Ok(r)) = (&m.target, &m.reconciler) else { continue };
            if self.forwarding.contains_key(t) {
                continue;
            }
            match crate::aws::forward::ensure(&r.aws, &home.scope, &arn, &r.controller_id).await {
                Ok(f) => {
                    self.forwarding.insert(t.clone(), f);
                    added = true;
                }
                Err(e) => {
                    warn!(target = %t, error = %e, "Could not forward the Target's events; the stale backstop catches its rotations meanwhile")
                }
            }
        }
        if !added {
            return;
        }
        let roles: Vec<String> = self.forwarding.values().filter(|f| f.to_queue).map(|f| f.role_arn.clone()).collect();
        let forwards: Vec<_> = self.forwarding.values().cloned().collect();
        let id = &self.cfg.controller_id;
        let res = match crate::aws::plumbing::ensure(home, id, self.cfg.max_receives, &roles).await {
            Ok(_) => crate::aws::forward::allow_on_bus(home, &forwards, id).await,
            Err(e) => Err(e),
        };
        if let Err(e) = res {
            warn!(error = %e, queue = %url, "Could not let the Targets' rules send; tried again next pass");
            // Forget them all, so the next pass writes the policies again.
            self.forwarding.clear();
        }
    }

    /// Each Target on /status: connected, or why its role cannot be assumed.
    fn report_targets(&self) {
        let mut board = self.shared.board();
        board.targets = self
            .fleet
            .members
            .iter()
            .filter_map(|m| {
                let t = m.target.clone()?;
                let status = match &m.reconciler {
                    Ok(r) => super::status::TargetStatus {
                        account: r.aws.scope.account.clone(),
                        region: r.aws.scope.region.clone(),
                        connected: true,
                        error: None,
                    },
                    Err(e) => {
                        let def = self.manifests.desired.targets.get(&t);
                        super::status::TargetStatus {
                            account: def.map(|d| d.account.clone()).unwrap_or_default(),
                            region: def.map(|d| d.region.clone()).unwrap_or_default(),
                            connected: false,
                            error: Some(e.to_string()),
                        }
                    }
                };
                Some((t, status))
            })
            .collect();
    }

    /// Status and holds from one pass's report.
    fn record(&mut self, report: &ApplyReport) {
        let t = now();
        let at = Instant::now();
        let results: BTreeMap<_, _> = report.results.iter().filter(|r| !r.pruned).map(|r| (&r.key, r)).collect();
        let mut board = self.shared.board();
        let prune = &report.plan.prune;
        let pruned: BTreeMap<_, _> = report.results.iter().filter(|r| r.pruned).map(|r| (&r.key, r)).collect();
        board.prune = (!prune.objects.is_empty()).then(|| PruneStatus {
            enabled: self.fleet.home().prune.enabled,
            guard: prune.guard.clone(),
            objects: prune
                .objects
                .iter()
                .flat_map(|o| o.changes.iter().map(move |c| format!("{}: {}: {}", o.key, c.resource, c.detail)))
                .collect(),
            failed: prune
                .objects
                .iter()
                .filter_map(|o| pruned.get(&o.key).and_then(|r| r.error.as_ref()).map(|e| format!("{}: {e}", o.key)))
                .collect(),
        });
        for plan in &report.plan.objects {
            let r = results.get(&plan.key);
            let failure: Option<&Failure> = r.and_then(|r| r.error.as_ref());
            let outcome = PassOutcome {
                plan,
                writes: r.map_or(0, |r| r.ops),
                failure,
                kept_invalid: self.manifests.kept_invalid.contains(&plan.key),
                refused: self.manifests.desired.refused.contains(&plan.key),
            };
            let st = board.object(&plan.key, t);
            st.judge(&verdicts(outcome), t);
            if let Some(rev) = r.and_then(|r| r.registered.as_ref()) {
                st.last_applied_revision = Some(rev.clone());
            } else if st.last_applied_revision.is_none() {
                st.last_applied_revision.clone_from(&plan.kept_revision);
            }
            if r.is_some_and(|r| r.held) {
                continue;
            }
            if failure.is_some() {
                self.shared.metrics.errors.get_or_create(&ResultLabels { result: "apply".into() }).inc();
            }
            self.holds.record(plan, failure.map_or(Ok(()), Err), at);
        }
    }

    /// Follows the deployments this pass's UpdateService calls started.
    async fn follow_applied(&mut self, report: &ApplyReport) {
        let mut effects = Vec::new();
        for started in report.started_rollouts(now()) {
            effects.extend(self.rollouts.opened(&self.shared, started));
        }
        let failed = self.rollouts.carry(&ctx!(self), effects).await;
        self.start_failed(failed);
    }

    /// Redeploys stale services; true if one could not be redeployed.
    async fn stale_backstop(&mut self, o: &Observed, just_updated: &BTreeSet<String>) -> bool {
        let stale = self.backstop.stale(&self.manifests.desired, o, just_updated);
        let mut failed = false;
        for s in stale {
            // Waiting for a slot, or held by a stopped wave: not redeployed behind the tracker's back.
            if self.rollouts.holds(&s.service) {
                continue;
            }
            info!(service = %s.service, trigger = %s.why, "Value changed after the newest deployment: redeploying");
            let w = waiting(&s.service, Trigger::Stale, s.why.clone(), s.before.clone(), format!("stale:{}", s.why));
            let res = self.rollouts.request(&ctx!(self), w).await;
            match res {
                Ok(_) => self.backstop.answered(&s.service, s.changed),
                Err(e) => {
                    warn!(service = %s.service, error = %e, "Stale redeploy failed; retrying shortly");
                    failed = true;
                }
            }
        }
        failed
    }

    pub async fn on_messages(&mut self, batch: Vec<Message>) {
        let scopes = self.fleet.scopes();
        let mut deployments = Vec::new();
        let received: Vec<Received> = batch
            .into_iter()
            .map(|msg| {
                let event = crate::events::read_from(&msg.body, &scopes);
                if let Some(sent) = event.time {
                    self.shared.metrics.queue_lag_seconds.set((now() - sent).max(0.0));
                }
                let readers = match &event.parsed {
                    Parsed::Malformed(why) => {
                        warn!(message = %msg.id, reason = %why, "Dropping a malformed message");
                        BTreeSet::new()
                    }
                    Parsed::Ignored(why) => {
                        debug!(message = %msg.id, reason = %why, "Event does not change a value tasks read");
                        BTreeSet::new()
                    }
                    Parsed::Deployment(d) => {
                        debug!(deployment = %d.deployment_id, state = ?d.state, "ECS deployment event");
                        deployments.push(d.clone());
                        BTreeSet::new()
                    }
                    Parsed::Change(c) => {
                        let readers = self.index.services_for(c);
                        info!(value = %c.value, cause = %c.cause, services = ?readers, "Value changed");
                        readers
                    }
                };
                Received {
                    receipt: Receipt { id: msg.id, handle: msg.handle },
                    receive_count: msg.receive_count,
                    event,
                    readers,
                }
            })
            .collect();
        for d in &deployments {
            let failed = self.rollouts.on_event(&ctx!(self), d).await;
            self.start_failed(failed);
        }
        let actions = self.debounce.on(Input::Received(received), Instant::now());
        self.act(actions).await;
    }

    pub async fn on_due(&mut self) {
        let actions = self.debounce.on(Input::Tick, Instant::now());
        self.act(actions).await;
    }

    /// Carries the debouncer's actions out; redeploy outcomes go back into it.
    async fn act(&mut self, actions: Vec<Action>) {
        let mut todo = VecDeque::from(actions);
        while let Some(action) = todo.pop_front() {
            match action {
                Action::Count(outcome) => {
                    self.shared.metrics.events.get_or_create(&OutcomeLabels { outcome: outcome.into() }).inc();
                }
                Action::Delete(receipts) => {
                    if let Some(q) = &self.queue {
                        q.delete(&receipts).await;
                    }
                }
                Action::Release { receipt, after } => {
                    if !after.is_zero() {
                        warn!(message = %receipt.id, retry_in = ?after, "Redeploy failed; the message stays on the queue");
                    }
                    if let Some(q) = &self.queue {
                        q.release(&receipt, after).await;
                    }
                }
                Action::Answered { service, through } => self.backstop.answered(&service, through),
                Action::Redeploy(dues) if !self.fenced().await => {
                    // Not provably the leader: nothing is redeployed now; tried
                    // again shortly (or, once the lease is lost, by whoever leads).
                    warn!(services = dues.len(), "Redeploys deferred: this replica cannot prove it holds the lease");
                    let retry_in = crate::aws::retry::Backoff::CALL.delay(self.unread);
                    self.unread = self.unread.saturating_add(1);
                    let outcomes = dues.into_iter().map(|d| (d.service, Outcome::Unread { retry_in })).collect();
                    todo.extend(self.debounce.on(Input::Done(outcomes), Instant::now()));
                }
                Action::Redeploy(dues) => {
                    let ctx = ctx!(self);
                    let redeployer = Redeployer { ctx: &ctx, concurrency: self.cfg.concurrency };
                    let outcomes = redeployer.due(dues, self.unread, &mut self.rollouts).await;
                    let unread = outcomes.iter().any(|(_, o)| matches!(o, Outcome::Unread { .. }));
                    self.unread = if unread { self.unread.saturating_add(1) } else { 0 };
                    todo.extend(self.debounce.on(Input::Done(outcomes), Instant::now()));
                }
            }
        }
    }

    /// On shutdown: messages held for a debounce window go back to the queue
    /// now (visibility 0), undeleted, so the next controller acts on them at once.
    pub async fn shutdown(&mut self) {
        let held = self.debounce.held();
        let actions = self.debounce.on(Input::Shutdown, Instant::now());
        self.act(actions).await;
        info!(messages_returned_to_queue = held, "Stopped");
    }
}

fn secret_arns(o: &Observed) -> BTreeMap<String, String> {
    o.secrets.iter().map(|(k, s)| (k.clone(), s.arn.clone())).collect()
}
