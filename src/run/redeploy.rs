//! Deciding the redeploys of the services whose debounce window closed: read
//! in batches of ten, each is redeployed unless its newest deployment already
//! serves the changes. The redeploy itself goes to the rollouts room, which
//! starts it now or when a rollout slot frees up, and follows it.

use std::collections::{BTreeMap, BTreeSet};

use tracing::{info, warn};

use super::debounce::{Due, Outcome};
use super::now;
use super::rollouts::{Ctx, Requested, Rollouts, waiting};
use super::status::Verdict;
use crate::aws::retry::Backoff;
use crate::events::{ChangedValue, ValueChange, needs_last_change, serves_event, started_after};
use crate::fleet::by_account;
use crate::metrics::ResultLabels;
use crate::model::{Kind, ObjectKey};
use crate::reason::Reason;
use crate::rollout::Trigger;

pub struct Redeployer<'a> {
    pub ctx: &'a Ctx<'a>,
    pub concurrency: usize,
}

impl Redeployer<'_> {
    /// Redeploys every due service unless it is already fresh. `unread` counts
    /// consecutive failures to read the services (for the retry delay).
    pub async fn due(&self, dues: Vec<Due>, unread: u32, rollouts: &mut Rollouts) -> Vec<(String, Outcome)> {
        // Read in each service's own account, by ten.
        let defs = dues.iter().filter_map(|d| self.ctx.desired.services.get(&d.service));
        let mut observed = BTreeMap::new();
        for (aws, defs) in by_account(defs, |d| self.ctx.aws(&d.name)) {
            let pairs = defs.iter().map(|d| (d.cluster.as_str(), d.service_name.as_str()));
            match crate::aws::observe::describe_services(aws, pairs).await {
                // Kept apart by account (equal names may be in two Targets).
                Ok(mut o) => observed.extend(defs.iter().filter_map(|d| {
                    o.remove(&(d.cluster.clone(), d.service_name.clone())).map(|s| (d.observed_key(), s))
                })),
                Err(e) => {
                    let retry_in = Backoff::CALL.delay(unread);
                    warn!(error = %e, retry_in = ?retry_in, "Could not read services for redeploys; trying again");
                    return dues.into_iter().map(|d| (d.service, Outcome::Unread { retry_in })).collect();
                }
            }
        }
        let mut last_changes = BTreeMap::new();
        let mut outcomes = Vec::new();
        for due in dues {
            let outcome = self.one(&due, &observed, &mut last_changes, rollouts).await;
            outcomes.push((due.service, outcome));
        }
        outcomes
    }

    async fn one(
        &self,
        due: &Due,
        observed: &BTreeMap<(String, String), crate::observed::ObservedService>,
        last_changes: &mut BTreeMap<ChangedValue, Option<f64>>,
        rollouts: &mut Rollouts,
    ) -> Outcome {
        let Some(def) = self.ctx.desired.services.get(&due.service) else { return Outcome::Gone };
        let Some(svc) = observed.get(&def.observed_key()) else {
            warn!(service = %due.service, "Service not found; cannot redeploy");
            self.count_failure();
            self.report(&due.service, Reason::ServiceNotFound, "service not found; cannot redeploy");
            return Outcome::Failed;
        };
        if svc.deployment_controller != "ECS" {
            // Not retried forever: reported, and the message is done.
            let msg =
                format!("uses the {} deployment controller; force a deployment through it", svc.deployment_controller);
            warn!(service = %due.service, "{msg}");
            self.report(&due.service, Reason::UnsupportedDeploymentController, &msg);
            return Outcome::Unsupported;
        }
        if let Some(start) = svc.newest_deployment_start()
            && self.serves_all(start, &due.changes, last_changes).await
        {
            info!(service = %due.service, "Already deployed after the change: no redeploy");
            return Outcome::Fresh { start };
        }
        let causes: BTreeSet<String> = due.changes.iter().map(|c| format!("{} ({})", c.value, c.cause)).collect();
        let trigger = causes.into_iter().collect::<Vec<_>>().join(", ");
        // One value change is one wave: the services redeployed for it.
        let mut wave: Vec<String> = due
            .changes
            .iter()
            .map(|c| format!("{}@{}", c.value, c.at.map_or_else(|| "?".into(), |t| t.to_string())))
            .collect();
        wave.sort();
        wave.dedup();
        let w = waiting(
            &due.service,
            Trigger::Rotation,
            trigger,
            svc.primary_deployment().map(str::to_string),
            wave.join(","),
        );
        match rollouts.request(self.ctx, w).await {
            Ok(Requested::Started) => Outcome::Deployed,
            Ok(Requested::Queued) => Outcome::Queued,
            Err(e) => {
                warn!(service = %due.service, error = %e, "Redeploy failed");
                self.count_failure();
                self.report(&due.service, Reason::RedeployFailed, &e.to_string());
                Outcome::Failed
            }
        }
    }

    /// Whether a deployment that started at `start` already serves every
    /// change. Event times are whole seconds: for a deployment that started
    /// within an event's second, the values' precise last-change times are
    /// read (once per batch, in `last_changes`) to tell.
    async fn serves_all(
        &self,
        start: f64,
        changes: &[ValueChange],
        last_changes: &mut BTreeMap<ChangedValue, Option<f64>>,
    ) -> bool {
        let at: Vec<(f64, &ChangedValue)> = changes.iter().map(|c| (c.at.unwrap_or_else(now), &c.value)).collect();
        if at.iter().any(|(t, _)| !started_after(start, *t) && !needs_last_change(start, *t)) {
            return false;
        }
        let unread: BTreeSet<ChangedValue> = at
            .iter()
            .filter(|(t, v)| needs_last_change(start, *t) && !last_changes.contains_key(*v))
            .map(|(_, v)| (*v).clone())
            .collect();
        if !unread.is_empty() {
            // Each value's change time is read in its own account.
            let mut read = BTreeMap::new();
            for (aws, values) in by_account(unread.iter().cloned(), |v| self.ctx.clients.aws_for_value(v)) {
                let values: BTreeSet<ChangedValue> = values.into_iter().collect();
                read.extend(crate::aws::observe::last_change_times(aws, &values, self.concurrency).await);
            }
            for v in unread {
                let t = read.get(&v).copied();
                last_changes.insert(v, t);
            }
        }
        at.iter().all(|(t, v)| serves_event(start, *t, last_changes.get(*v).copied().flatten()))
    }

    fn count_failure(&self) {
        self.ctx.shared.metrics.errors.get_or_create(&ResultLabels { result: "redeploy".into() }).inc();
    }

    /// A redeploy that could not be made: the service's tasks still hold the old value.
    fn report(&self, service: &str, reason: Reason, message: &str) {
        let v = Verdict { ok: false, reason, message: message.to_string() };
        self.ctx.shared.board().object(&ObjectKey::new(Kind::Service, service), now()).judge(&(v.clone(), v), now());
    }
}
