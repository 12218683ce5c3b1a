//! Rollouts: every deployment secretwire starts (apply's UpdateService, a
//! rotation or stale redeploy) followed by its id to its end — COMPLETED,
//! FAILED, rolled back by the circuit breaker, replaced, or past
//! `--rollout-timeout` — and, when it fails, explained in the product's own
//! terms. Pure: `judge` reads one DescribeServices answer, `tracker` is the
//! state machine (open rollouts, the poll schedule, timeouts, waves),
//! `diagnose` ties ECS's stopped reason to the manifest reference it names.
//! `run` and `apply --wait` drive them; the reads are in `aws::observe`.

pub mod diagnose;
pub mod judge;
#[cfg(test)]
mod tests;
pub mod tracker;

use serde::Serialize;

/// What started a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    /// A manifest change: apply registered a revision and updated the service.
    Apply,
    /// A rotation event.
    Rotation,
    /// The level-triggered backstop found a value newer than the deployment.
    Stale,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Apply => "apply",
            Trigger::Rotation => "rotation",
            Trigger::Stale => "stale",
        }
    }
}

/// How a rollout ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Outcome {
    Completed,
    /// `rolloutState` FAILED (circuit breaker without rollback, or alarms).
    Failed,
    /// FAILED, and the circuit breaker rolled the service back.
    RolledBack,
    /// Not ended within `--rollout-timeout`.
    TimedOut,
    /// Another deployment replaced it before it ended (a later change, or
    /// someone's manual deployment); that one is what runs now.
    Superseded,
}

impl Outcome {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::Failed => "failed",
            Outcome::RolledBack => "rolled_back",
            Outcome::TimedOut => "timed_out",
            Outcome::Superseded => "superseded",
        }
    }

    /// The service did not get what was deployed: Degraded, `apply --wait` fails.
    pub fn failed(self) -> bool {
        matches!(self, Outcome::Failed | Outcome::RolledBack | Outcome::TimedOut)
    }
}

/// A deployment secretwire started.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Started {
    /// The Service manifest's name.
    pub service: String,
    pub cluster: String,
    pub service_name: String,
    pub deployment_id: String,
    pub trigger: Trigger,
    /// What changed, for people (e.g. `secret prod/db (RotationSucceeded)`).
    pub detail: String,
    /// Seconds since the epoch.
    pub at: f64,
    /// The change it belongs to: rotation redeploys of one value change form
    /// one wave, which stops when its first rollout fails.
    #[serde(skip)]
    pub wave: Option<String>,
}

/// Tasks of the deployment, as ECS counts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    pub running: i32,
    pub desired: i32,
    pub pending: i32,
    pub failed: i32,
}

/// The value of the service tag `secretwire.dev/rollout`: `ID TRIGGER EPOCH`.
pub fn tag_value(deployment_id: &str, trigger: Trigger, at: f64) -> String {
    format!("{deployment_id} {} {}", trigger.as_str(), at as u64)
}

/// The tag's value for a service whose redeploy a stopped wave holds:
/// `held EPOCH FAILED-SERVICE` (the changes before EPOCH are held).
pub fn held_tag_value(at: f64, failed_service: &str) -> String {
    format!("held {} {failed_service}", at as u64)
}

/// What the `secretwire.dev/rollout` tag of a service records.
#[derive(Debug, Clone, PartialEq)]
pub enum Recorded {
    /// The last deployment secretwire started.
    Deployment { id: String, trigger: Trigger, at: f64 },
    /// A redeploy held since `at` because `failed` (same change) failed.
    Held { at: f64, failed: String },
}

/// Reads a `secretwire.dev/rollout` tag back.
pub fn recorded(v: &str) -> Option<Recorded> {
    if let Some(rest) = v.strip_prefix("held ") {
        let (at, failed) = rest.split_once(' ')?;
        return Some(Recorded::Held { at: at.parse().ok()?, failed: failed.to_string() });
    }
    let (id, trigger, at) = parse_tag(v)?;
    Some(Recorded::Deployment { id, trigger, at })
}

fn parse_tag(v: &str) -> Option<(String, Trigger, f64)> {
    let mut parts = v.split(' ');
    let id = parts.next().filter(|s| !s.is_empty())?.to_string();
    let trigger = match parts.next()? {
        "apply" => Trigger::Apply,
        "rotation" => Trigger::Rotation,
        "stale" => Trigger::Stale,
        _ => return None,
    };
    let at = parts.next()?.parse().ok()?;
    Some((id, trigger, at))
}

/// A rollout that ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Ended {
    pub started: Started,
    pub outcome: Outcome,
    /// ECS's `rolloutStateReason`, or why secretwire decided.
    pub reason: String,
    /// Seconds since the epoch.
    pub at: f64,
    pub progress: Progress,
}

impl Ended {
    pub fn duration(&self) -> f64 {
        (self.at - self.started.at).max(0.0)
    }
}
