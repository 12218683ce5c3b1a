//! The status board `/status` shows: per manifest object the Kubernetes-style
//! conditions `Ready` and `Synced` (typed, with a `Reason`), the last applied
//! revision and the last redeploy; and the controller's readiness, the one
//! source `/readyz`, `/status` and the log all read.
//!
//! `Ready`: everything the manifest declares is true in AWS. `Synced`: the
//! last reconcile of the object ran without error. They agree except for an
//! object whose manifest became invalid: its last good version is applied
//! (`Synced=True, LastGoodVersion`) but it is not what the repo says
//! (`Ready=False, InvalidManifest`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;

use crate::events::format_rfc3339;
use crate::metrics::Metrics;
use crate::model::{Kind, ObjectKey};
use crate::plan::{ObjectPlan, ProblemKind};
use crate::reason::{Failure, Reason};
use crate::rollout::diagnose::Diagnosis;
use crate::rollout::tracker::Waiting;
use crate::rollout::{Ended, Outcome, Progress, Started, Trigger};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ConditionType {
    Ready,
    Synced,
    /// Services: the last deployment secretwire started is progressing or
    /// completed (True), or failed, rolled back or timed out (False).
    Progressing,
    /// Services: the last rollout failed, or a redeploy is held by a stopped wave.
    Degraded,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub kind: ConditionType,
    pub status: ConditionStatus,
    pub reason: Reason,
    pub message: String,
    pub last_transition_time: String,
}

/// One condition's new value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub ok: bool,
    pub reason: Reason,
    pub message: String,
}

impl Verdict {
    fn yes(reason: Reason, message: impl Into<String>) -> Self {
        Self { ok: true, reason, message: message.into() }
    }
    fn no(reason: Reason, message: impl Into<String>) -> Self {
        Self { ok: false, reason, message: message.into() }
    }
}

/// What one pass found for one object.
#[derive(Debug, Clone, Copy)]
pub struct PassOutcome<'a> {
    pub plan: &'a ObjectPlan,
    /// Writes sent this pass.
    pub writes: usize,
    /// The failure of this pass, or the earlier one its writes still wait out.
    pub failure: Option<&'a Failure>,
    /// Its manifest is invalid; this is its last good version.
    pub kept_invalid: bool,
    /// Of `kept_invalid`: the manifest is well-formed but a tenant rule refuses it.
    pub refused: bool,
}

/// `(Ready, Synced)` for one object after a pass: the one place they are decided.
pub fn verdicts(o: PassOutcome<'_>) -> (Verdict, Verdict) {
    if let Some(p) = o.plan.problems.iter().find(|p| p.kind.blocks()) {
        let msg = format!("{}: {}", p.resource, p.message);
        return (Verdict::no(p.reason, &msg), Verdict::no(p.reason, msg));
    }
    if let Some(f) = o.failure {
        return (Verdict::no(f.reason, &f.message), Verdict::no(f.reason, &f.message));
    }
    if o.kept_invalid {
        let msg = if o.refused {
            "refused by a tenant rule; keeping the last good version"
        } else {
            "manifest is invalid; keeping the last good version"
        };
        return (Verdict::no(Reason::InvalidManifest, msg), Verdict::yes(Reason::LastGoodVersion, ""));
    }
    let of = |kind: ProblemKind| -> Vec<String> {
        o.plan.problems.iter().filter(|p| p.kind == kind).map(|p| format!("{}: {}", p.resource, p.message)).collect()
    };
    let drift = of(ProblemKind::Drift);
    // Applied as declared, but it will not work as expected: said on Ready.
    let warnings = of(ProblemKind::Warning);
    let synced = if !drift.is_empty() {
        Verdict::yes(Reason::Drift, drift.join("; "))
    } else if o.writes > 0 {
        Verdict::yes(Reason::Applied, format!("{} writes", o.writes))
    } else {
        Verdict::yes(Reason::UpToDate, "")
    };
    let ready = match warnings.is_empty() {
        true => Verdict::yes(Reason::Reconciled, ""),
        false => Verdict::yes(Reason::CrossAccount, warnings.join("; ")),
    };
    (ready, synced)
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Redeploy {
    pub at: String,
    pub reason: &'static str,
    pub trigger: String,
    pub deployment_id: Option<String>,
}

/// The last deployment secretwire started for a service, and how it went.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutRecord {
    pub deployment_id: String,
    pub trigger: Trigger,
    pub detail: String,
    pub started: String,
    pub ended: Option<String>,
    pub outcome: Option<Outcome>,
    /// ECS's `rolloutStateReason` at the end.
    pub reason: Option<String>,
    /// Why it failed, in the product's terms (failed rollouts only).
    pub diagnosis: Option<Diagnosis>,
    pub progress: Progress,
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_rollout: Option<RolloutRecord>,
    /// When this controller first saw the object (`secretwire status`'s AGE).
    pub first_seen: String,
}

impl ObjectStatus {
    fn new(key: &ObjectKey, now: f64) -> Self {
        let c = |kind| Condition {
            kind,
            status: ConditionStatus::Unknown,
            reason: Reason::Pending,
            message: String::new(),
            last_transition_time: format_rfc3339(now),
        };
        let mut conditions = vec![c(ConditionType::Ready), c(ConditionType::Synced)];
        if key.kind == Kind::Service {
            // Always present, True or False (never Unknown): no rollout yet is a fact.
            for kind in [ConditionType::Progressing, ConditionType::Degraded] {
                conditions.push(Condition {
                    status: ConditionStatus::False,
                    reason: Reason::NoRollout,
                    message: "no deployment started by secretwire yet".into(),
                    ..c(kind)
                });
            }
        }
        Self {
            kind: key.kind,
            name: key.name.clone(),
            conditions,
            last_applied_revision: None,
            last_redeploy: None,
            redeploys: 0,
            last_rollout: None,
            first_seen: format_rfc3339(now),
        }
    }

    pub fn condition(&self, kind: ConditionType) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.kind == kind)
    }

    /// A deployment secretwire started: Progressing=True (NewDeployment);
    /// Degraded keeps its value until this rollout ends.
    pub fn rollout_started(&mut self, s: &Started, now: f64) {
        self.last_rollout = Some(RolloutRecord {
            deployment_id: s.deployment_id.clone(),
            trigger: s.trigger,
            detail: s.detail.clone(),
            started: format_rfc3339(s.at),
            ended: None,
            outcome: None,
            reason: None,
            diagnosis: None,
            progress: Progress::default(),
        });
        let msg = format!("deployment {} ({}: {}) in progress", s.deployment_id, s.trigger.as_str(), s.detail);
        self.set(ConditionType::Progressing, &Verdict::yes(Reason::NewDeployment, msg), now);
    }

    pub fn rollout_progress(&mut self, p: Progress) {
        if let Some(r) = self.last_rollout.as_mut().filter(|r| r.outcome.is_none()) {
            r.progress = p;
        }
    }

    /// A rollout ended: Kubernetes Deployment style, Progressing stays True
    /// when it completed and turns False when it failed, rolled back or timed
    /// out; Degraded is True exactly then.
    pub fn rollout_ended(&mut self, e: &Ended, diagnosis: Option<Diagnosis>, now: f64) {
        if let Some(r) = self.last_rollout.as_mut().filter(|r| r.deployment_id == e.started.deployment_id) {
            r.ended = Some(format_rfc3339(e.at));
            r.outcome = Some(e.outcome);
            r.reason = Some(e.reason.clone());
            r.diagnosis.clone_from(&diagnosis);
            r.progress = e.progress;
        }
        let id = &e.started.deployment_id;
        let why = diagnosis.as_ref().map_or(e.reason.clone(), |d| match &d.cause {
            Some(c) => format!("{}; {c}", d.ecs_reason),
            None => d.ecs_reason.clone(),
        });
        let (reason, ok, msg) = match e.outcome {
            Outcome::Completed => (Reason::RolloutCompleted, true, format!("deployment {id} completed")),
            Outcome::Failed => (Reason::RolloutFailed, false, format!("deployment {id} failed: {why}")),
            Outcome::RolledBack => (Reason::RolledBack, false, format!("deployment {id} was rolled back: {why}")),
            Outcome::TimedOut => (Reason::RolloutTimedOut, false, format!("deployment {id}: {why}")),
            // What replaced it says how the service is; nothing to conclude here.
            Outcome::Superseded => return,
        };
        self.set(ConditionType::Progressing, &Verdict { ok, reason, message: msg.clone() }, now);
        let degraded = if ok { Verdict::no(reason, msg) } else { Verdict::yes(reason, msg) };
        self.set(ConditionType::Degraded, &degraded, now);
    }

    /// A redeploy waits for a slot, or (held) its wave stopped.
    pub fn rollout_waiting(&mut self, w: &Waiting, now: f64) {
        match &w.held {
            Some(why) => {
                self.set(ConditionType::Degraded, &Verdict::yes(Reason::WaveHeld, why.clone()), now);
            }
            None => {
                let msg = format!("{} redeploy ({}) waits for a rollout slot", w.trigger.as_str(), w.detail);
                self.set(ConditionType::Progressing, &Verdict::yes(Reason::RolloutPending, msg), now);
            }
        }
    }

    /// Someone else's deployment replaced a failed or held one.
    pub fn manually_deployed(&mut self, deployment: &str, now: f64) {
        let msg = format!("deployment {deployment}, not started by secretwire, replaced the failed one");
        self.set(ConditionType::Degraded, &Verdict::no(Reason::ManualDeployment, msg), now);
    }

    pub fn set(&mut self, kind: ConditionType, v: &Verdict, now: f64) {
        let status = if v.ok { ConditionStatus::True } else { ConditionStatus::False };
        if let Some(c) = self.conditions.iter_mut().find(|c| c.kind == kind) {
            if c.status != status {
                c.last_transition_time = format_rfc3339(now);
            }
            c.status = status;
            c.reason = v.reason;
            c.message.clone_from(&v.message);
        }
    }

    /// Sets both conditions.
    pub fn judge(&mut self, (ready, synced): &(Verdict, Verdict), now: f64) {
        self.set(ConditionType::Ready, ready, now);
        self.set(ConditionType::Synced, synced, now);
    }
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusBoard {
    /// The first full reconcile is done (`/readyz` answers 200); on a
    /// standby (`--lease`): the lease table answers.
    pub ready: bool,
    /// This replica leads (always, without `--lease`).
    pub leader: bool,
    /// `--lease`: who holds it (the same on every replica).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_holder: Option<String>,
    pub last_reconcile: Option<String>,
    pub events_queue: Option<String>,
    pub manifest_errors: Vec<String>,
    pub objects: BTreeMap<String, ObjectStatus>,
    /// What the last pass found not declared any more, and what prune did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prune: Option<PruneStatus>,
    /// Each declared Target, by name: reached through its role, or why not.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub targets: BTreeMap<String, TargetStatus>,
}

/// A Target as the last pass found it.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetStatus {
    pub account: String,
    pub region: String,
    /// Its role was assumed; its objects are reconciled.
    pub connected: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Prune as the last pass saw it.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PruneStatus {
    /// `--prune`: acted on, else only shown.
    pub enabled: bool,
    #[serde(flatten)]
    pub guard: crate::plan::prune::Guard,
    /// One line per object: `Kind/name: resource: what happens, or why it waits`.
    pub objects: Vec<String>,
    /// Prune writes that failed this pass, with why.
    pub failed: Vec<String>,
}

impl StatusBoard {
    pub fn object(&mut self, key: &ObjectKey, now: f64) -> &mut ObjectStatus {
        self.objects.entry(key.to_string()).or_insert_with(|| ObjectStatus::new(key, now))
    }
}

/// What the HTTP endpoints read, shared with the controller.
pub struct Shared {
    pub metrics: Arc<Metrics>,
    status: Mutex<StatusBoard>,
}

impl Shared {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self { metrics, status: Mutex::new(StatusBoard::default()) }
    }

    pub fn board(&self) -> MutexGuard<'_, StatusBoard> {
        self.status.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn ready(&self) -> bool {
        self.board().ready
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Action, Change, Problem};
    use crate::reason::Retry;

    fn plan(problems: Vec<Problem>) -> ObjectPlan {
        let mut p = crate::plan::ObjectPlan::new(ObjectKey::new(Kind::Secret, "web/api"));
        p.problems = problems;
        p.changes.push(Change {
            diff: Vec::new(),
            action: Action::Unchanged,
            resource: "secret web/api".into(),
            detail: String::new(),
            ops: vec![],
        });
        p
    }

    fn outcome<'a>(plan: &'a ObjectPlan, failure: Option<&'a Failure>, kept_invalid: bool) -> PassOutcome<'a> {
        PassOutcome { plan, writes: 0, failure, kept_invalid, refused: false }
    }

    #[test]
    fn a_failed_create_is_neither_ready_nor_synced_and_says_why() {
        let p = plan(vec![]);
        let f = Failure {
            reason: Reason::MissingEnvironmentVariable,
            retry: Retry::Terminal,
            message: "environment variable `SPLUNK_TOKEN` is not set".into(),
        };
        let (ready, synced) = verdicts(outcome(&p, Some(&f), false));
        assert!(!ready.ok && !synced.ok);
        assert_eq!(
            (ready.reason, synced.reason),
            (Reason::MissingEnvironmentVariable, Reason::MissingEnvironmentVariable)
        );
        assert!(ready.message.contains("SPLUNK_TOKEN"));
    }

    #[test]
    fn a_warning_is_ready_saying_it_and_synced() {
        let w = plan(vec![Problem {
            kind: ProblemKind::Warning,
            reason: Reason::CrossAccount,
            resource: "Secret/shared/db".into(),
            message: "is in account 222222222222 under the AWS managed key".into(),
        }]);
        let (ready, synced) = verdicts(outcome(&w, None, false));
        assert!(ready.ok && ready.reason == Reason::CrossAccount && ready.message.contains("AWS managed key"));
        assert!(synced.ok && synced.reason == Reason::UpToDate, "{synced:?}");
    }

    #[test]
    fn plan_problems_carry_their_own_reason() {
        for reason in [Reason::KmsKeyNotFound, Reason::ServiceNotFound, Reason::Conflict] {
            let p = plan(vec![Problem { kind: ProblemKind::Error, reason, resource: "x".into(), message: "y".into() }]);
            let (ready, synced) = verdicts(outcome(&p, None, false));
            assert_eq!((ready.ok, ready.reason, synced.ok, synced.reason), (false, reason, false, reason));
        }
    }

    #[test]
    fn drift_is_ready_and_synced_with_its_message_and_an_invalid_manifest_is_synced_but_not_ready() {
        let drift = plan(vec![Problem {
            kind: ProblemKind::Drift,
            reason: Reason::Drift,
            resource: "ssm parameter /a".into(),
            message: "type differs".into(),
        }]);
        let (ready, synced) = verdicts(outcome(&drift, None, false));
        assert!(ready.ok && synced.ok && synced.reason == Reason::Drift && synced.message.contains("type differs"));
        let clean = plan(vec![]);
        let (ready, synced) = verdicts(outcome(&clean, None, true));
        assert_eq!((ready.ok, ready.reason), (false, Reason::InvalidManifest));
        assert_eq!((synced.ok, synced.reason), (true, Reason::LastGoodVersion));
        let (ready, synced) = verdicts(outcome(&clean, None, false));
        assert_eq!((ready.reason, synced.reason), (Reason::Reconciled, Reason::UpToDate));
    }
}
