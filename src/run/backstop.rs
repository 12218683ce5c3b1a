//! The level-triggered backstop: after every pass, a service whose unpinned
//! values changed after its newest deployment started is redeployed once
//! (`reason=stale`), so a change whose event was lost (the controller was
//! down, the event was dropped) is still acted on. Pure: the decision over
//! desired and observed state, what is already answered, and what a stopped
//! wave holds (recorded on the service).

use std::collections::{BTreeSet, HashMap};

use crate::arn::RawTarget;
use crate::events::{format_rfc3339, started_after};
use crate::model::{Desired, ServiceDef, ValueRef};
use crate::observed::Observed;

/// A service to redeploy, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Stale {
    pub service: String,
    /// The value change it answers.
    pub changed: f64,
    pub why: String,
    /// The PRIMARY deployment seen now, so a lost answer is not sent twice.
    pub before: Option<String>,
}

/// Per service, the latest value change a redeploy already answered: that
/// deployment started after the change was visible, so it is fresh even when
/// the change time is a whole second.
#[derive(Debug, Default)]
pub struct Backstop {
    answered: HashMap<String, f64>,
}

impl Backstop {
    pub fn answered(&mut self, service: &str, through: f64) {
        let a = self.answered.entry(service.to_string()).or_insert(f64::MIN);
        *a = a.max(through);
    }

    /// Forgets what was answered for `service` (its redeploy could not be started after all).
    pub fn forget(&mut self, service: &str) {
        self.answered.remove(service);
    }

    /// The services to redeploy; `just_updated` ones were deployed by this pass.
    pub fn stale(&self, desired: &Desired, o: &Observed, just_updated: &BTreeSet<String>) -> Vec<Stale> {
        let mut stale = Vec::new();
        for svc in desired.services.values().filter(|s| s.redeploy_on_change && !just_updated.contains(&s.name)) {
            let Some(obs) = o.services.get(&svc.observed_key()) else { continue };
            let Some(started) = obs.newest_deployment_start() else { continue };
            if obs.deployment_controller != "ECS" {
                continue;
            }
            // A whole-second change time leaves a second of doubt: one redeploy, no loop.
            // A redeploy a stopped wave holds (recorded on the service) is not
            // made behind its back, even by a controller that restarted since;
            // a change after the hold is a new change and releases it.
            let held_since = match obs.rollout.as_deref().and_then(crate::rollout::recorded) {
                Some(crate::rollout::Recorded::Held { at, .. }) => Some(at),
                _ => None,
            };
            if let Some((changed, what)) = newest_value_change(svc, o)
                && !started_after(started, changed)
                && held_since.is_none_or(|held| changed > held)
                && self.answered.get(&svc.name).is_none_or(|answered| *answered < changed)
            {
                stale.push(Stale {
                    service: svc.name.clone(),
                    changed,
                    why: format!("{what} changed at {}", format_rfc3339(changed)),
                    before: obs.primary_deployment().map(str::to_string),
                });
            }
        }
        stale
    }
}

/// The latest change time among the values the service reads not fixed to a version id, and which value.
fn newest_value_change(svc: &ServiceDef, o: &Observed) -> Option<(f64, String)> {
    let parameter =
        |name: &str| o.parameters.get(name).and_then(|p| p.last_modified).map(|t| (t, format!("parameter {name}")));
    let secret = |id: &str| o.secrets.get(id).and_then(|s| s.last_changed).map(|t| (t, format!("secret {id}")));
    svc.value_refs()
        // A label pin may have moved with any change: counted like an unpinned reader.
        .filter(|r| !r.is_fixed())
        .filter_map(|r| match r {
            ValueRef::Parameter { name } | ValueRef::Raw { target: RawTarget::Parameter { name, .. }, .. } => {
                parameter(name)
            }
            ValueRef::Secret { id, .. } => secret(id),
            ValueRef::Raw { target: RawTarget::Secret(s), .. } => secret(&s.secret_arn),
        })
        .max_by(|a, b| a.0.total_cmp(&b.0))
}
