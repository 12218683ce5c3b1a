//! Where one deployment stands, read from one DescribeServices answer
//! (DescribeServices reference, `Deployment`: `rolloutState` IN_PROGRESS /
//! COMPLETED / FAILED and `rolloutStateReason`). A circuit-breaker rollback
//! shows as the failed deployment (ACTIVE, FAILED) beside a new PRIMARY whose
//! reason starts "ECS deployment circuit breaker: rolling back"; once the
//! rollback is done the failed one is gone from the list.

use super::{Outcome, Progress};
use crate::events::ROLLBACK_REASON;
use crate::observed::{Deployment, ObservedService};

#[derive(Debug, Clone, PartialEq)]
pub enum Sighting {
    InProgress(Progress),
    Ended { outcome: Outcome, reason: String, progress: Progress },
}

fn progress(d: &Deployment) -> Progress {
    Progress { running: d.running_count, desired: d.desired_count, pending: d.pending_count, failed: d.failed_tasks }
}

/// Where deployment `id` of `svc` stands (`None`: the service is gone).
pub fn judge(id: &str, svc: Option<&ObservedService>) -> Sighting {
    let ended = |outcome, reason: &str, progress| Sighting::Ended { outcome, reason: reason.to_string(), progress };
    let Some(svc) = svc else {
        return ended(Outcome::Failed, "the service no longer exists", Progress::default());
    };
    let rollback = svc
        .deployments
        .iter()
        .find(|d| d.id != id && d.rollout_state_reason.as_deref().is_some_and(|r| r.starts_with(ROLLBACK_REASON)));
    let Some(d) = svc.deployments.iter().find(|d| d.id == id) else {
        // Gone from the list: replaced. By a rollback, or by another deployment.
        return match rollback {
            Some(r) => ended(Outcome::RolledBack, r.rollout_state_reason.as_deref().unwrap_or_default(), progress(r)),
            None => ended(Outcome::Superseded, "another deployment replaced it", Progress::default()),
        };
    };
    let reason = d.rollout_state_reason.clone().unwrap_or_default();
    match d.rollout_state.as_deref() {
        Some("COMPLETED") => ended(Outcome::Completed, &reason, progress(d)),
        Some("FAILED") if rollback.is_some() => ended(Outcome::RolledBack, &reason, progress(d)),
        Some("FAILED") => ended(Outcome::Failed, &reason, progress(d)),
        // A newer PRIMARY while ours still runs: replaced by a rollback or another deployment.
        _ if d.status != "PRIMARY" => match rollback {
            Some(_) => ended(Outcome::RolledBack, &reason, progress(d)),
            None => ended(Outcome::Superseded, "another deployment replaced it", progress(d)),
        },
        Some(_) => Sighting::InProgress(progress(d)),
        // No rolloutState (older services): `aws ecs wait services-stable`'s
        // rule, one deployment with every desired task running.
        None if svc.deployments.len() == 1 && d.running_count == d.desired_count => {
            ended(Outcome::Completed, "steady state", progress(d))
        }
        None => Sighting::InProgress(progress(d)),
    }
}
