//! Many accounts and regions from one controller: the repo split by
//! `spec.target` ([`split`]), one [`Reconciler`] per part with its own
//! clients (a Target's through STS AssumeRole), rate limiter and caches.
//!
//! A pass runs in two halves so that a Service can read a value another
//! part holds: every part's stores first (concurrently), then every part's
//! services, planned with the ARNs and keys the other parts' stores left.
//! One part's failure (its role cannot be assumed, its account cannot be
//! read) fails that part's objects alone. Without Targets the fleet is one
//! part and every pass is exactly the single-account pass.

pub mod split;

use std::collections::BTreeMap;

use futures_util::future::join_all;

use crate::aws::AwsError;
use crate::aws::limit::RateLimits;
use crate::model::{Desired, ObjectKey};
use crate::observed::ForeignValue;
use crate::plan::prune::{Guard, Prune};
use crate::plan::{ObjectPlan, Plan, Problem, ProblemKind};
use crate::reason::{Failure, Reason, Retry};
use crate::reconcile::{ApplyReport, ObjectResult, Reconciler, StoresDone};
pub use split::{Part, owner_id};

/// One part's reconciler, or why there is none.
pub struct Member {
    pub target: Option<String>,
    pub reconciler: Result<Reconciler, AwsError>,
}

pub struct Fleet {
    /// The controller's own account first, then each Target by name.
    pub members: Vec<Member>,
}

impl Fleet {
    /// The controller's own reconciler and one per Target the repo declares,
    /// each on the role it names (a role that cannot be assumed is recorded
    /// and fails that target's objects).
    pub async fn connect(home: Reconciler, desired: &Desired, limits: &RateLimits) -> Fleet {
        let targets = desired.targets.values().map(|t| {
            let home = &home;
            async move {
                let r = home.aws.for_target(t, &home.controller_id, limits.clone()).await.map(|aws| Reconciler {
                    aws,
                    controller_id: owner_id(&home.controller_id, Some(&t.name)),
                    concurrency: home.concurrency,
                    cache: Default::default(),
                    slow: std::sync::Arc::new(crate::aws::observe::SlowCache::new(home.slow.reverify)),
                    prune: home.prune,
                });
                Member { target: Some(t.name.clone()), reconciler: r }
            }
        });
        let mut members = join_all(targets).await;
        members.insert(0, Member { target: None, reconciler: Ok(home) });
        Fleet { members }
    }

    /// The controller's own reconciler.
    pub fn home(&self) -> &Reconciler {
        match &self.members[0].reconciler {
            Ok(r) => r,
            Err(_) => unreachable!("the controller's own account is always connected"),
        }
    }

    /// The reconciler of a Target (`None`: the controller's own account).
    pub fn member(&self, target: Option<&str>) -> Option<&Reconciler> {
        self.members.iter().find(|m| m.target.as_deref() == target)?.reconciler.as_ref().ok()
    }

    fn single(&self, desired: &Desired) -> bool {
        self.members.len() == 1 && desired.targets.is_empty()
    }

    /// Plans every part without writing.
    pub async fn plan(&self, desired: &Desired, keep_rendered: bool) -> Result<Plan, AwsError> {
        if self.single(desired) {
            return self.home().plan(desired, keep_rendered).await;
        }
        let parts = split::split(desired);
        let halves = join_all(self.pair(&parts).map(|(p, m)| async move {
            match &m.reconciler {
                Ok(r) => r.plan_stores_phase(&p.desired).await,
                Err(e) => Err(e.clone()),
            }
        }))
        .await;
        let foreign = foreign_values(&parts, &halves, self);
        let plans = join_all(self.pair(&parts).zip(halves).zip(foreign).map(|(((p, m), half), foreign)| async move {
            match (&m.reconciler, half) {
                (Ok(r), Ok(s)) => r.plan_rest(&p.desired, s, foreign, keep_rendered).await.map_err(|e| (p, e)),
                (_, Err(e)) => Err((p, e)),
                (Err(e), _) => Err((p, e.clone())),
            }
        }))
        .await;
        let mut merged = Plan::default();
        for (plan, part) in plans.into_iter().zip(&parts) {
            let plan = plan.unwrap_or_else(|(p, e)| failed_part(p, &e));
            merged.objects.extend(plan.objects);
            merge_prune(&mut merged.prune, plan.prune, part.target.as_deref());
        }
        Ok(merged)
    }

    /// Applies every part: all stores, then all services and prune.
    pub async fn apply(&self, desired: &Desired) -> Result<ApplyReport, AwsError> {
        let hold = |_: &ObjectPlan| -> Option<Failure> { None };
        if self.single(desired) {
            return self.home().apply(desired).await;
        }
        let parts = split::split(desired);
        let halves = join_all(self.pair(&parts).map(|(p, m)| async move {
            match &m.reconciler {
                Ok(r) => r.apply_stores_phase(&p.desired, &hold).await,
                Err(e) => Err(e.clone()),
            }
        }))
        .await;
        let foreign = foreign_values(&parts, &halves, self);
        let reports =
            join_all(self.pair(&parts).zip(halves).zip(foreign).map(|(((p, m), half), foreign)| async move {
                match (&m.reconciler, half) {
                    (Ok(r), Ok(s)) => r.apply_rest(&p.desired, s, foreign, &hold).await.map_err(|e| (p, e)),
                    (_, Err(e)) => Err((p, e)),
                    (Err(e), _) => Err((p, e.clone())),
                }
            }))
            .await;
        let mut merged = ApplyReport {
            plan: Plan::default(),
            results: Vec::new(),
            observed: crate::observed::Observed::new(self.home().aws.scope.clone()),
        };
        for (i, report) in reports.into_iter().enumerate() {
            let report = report.unwrap_or_else(|(p, e)| {
                let plan = failed_part(p, &e);
                let failure = part_failure(p, &e);
                let results =
                    plan.objects.iter().map(|o| ObjectResult::failed(o.key.clone(), failure.clone())).collect();
                ApplyReport { plan, results, observed: crate::observed::Observed::new(self.home().aws.scope.clone()) }
            });
            merged.plan.objects.extend(report.plan.objects);
            merge_prune(&mut merged.plan.prune, report.plan.prune, parts[i].target.as_deref());
            merged.results.extend(report.results);
            if i == 0 {
                merged.observed = report.observed;
            }
        }
        Ok(merged)
    }

    fn pair<'a>(&'a self, parts: &'a [Part]) -> impl Iterator<Item = (&'a Part, &'a Member)> {
        parts.iter().zip(&self.members)
    }
}

/// For each part, the values it reads from other parts, from their first halves.
fn foreign_values(
    parts: &[Part],
    halves: &[Result<StoresDone, AwsError>],
    fleet: &Fleet,
) -> Vec<BTreeMap<ObjectKey, ForeignValue>> {
    let index: BTreeMap<Option<&str>, usize> =
        parts.iter().enumerate().map(|(i, p)| (p.target.as_deref(), i)).collect();
    parts
        .iter()
        .map(|p| {
            p.desired
                .foreign
                .iter()
                .filter_map(|(key, owner)| {
                    let i = *index.get(&owner.as_deref())?;
                    let v = match &halves[i] {
                        Ok(s) => split::foreign_value(owner.as_deref(), key, &parts[i].desired, &s.observed, &s.stores),
                        Err(e) => {
                            let scope = match &fleet.members[i].reconciler {
                                Ok(r) => r.aws.scope.clone(),
                                Err(_) => fleet.home().aws.scope.clone(),
                            };
                            split::unreachable_value(owner.as_deref(), scope, &e.message)
                        }
                    };
                    Some((key.clone(), v))
                })
                .collect()
        })
        .collect()
}

fn part_failure(p: &Part, e: &AwsError) -> Failure {
    let mut f = e.failure();
    if p.target.is_some() && e.operation == "AssumeRole" {
        f = Failure { reason: Reason::TargetUnreachable, retry: Retry::Transient, message: f.message };
    }
    f
}

/// Every object of a part that could not be read, failed with why.
fn failed_part(p: &Part, e: &AwsError) -> Plan {
    let f = part_failure(p, e);
    let place = p.target.as_deref().map_or("the controller's own account".into(), |t| format!("Target {t}"));
    let keys = p.desired.keys();
    let objects = keys
        .into_iter()
        .map(|key| {
            let mut o = ObjectPlan::new(key);
            o.problems.push(Problem {
                kind: ProblemKind::Error,
                reason: f.reason,
                resource: place.clone(),
                message: f.message.clone(),
            });
            o
        })
        .collect();
    Plan { objects, prune: Prune { objects: Vec::new(), guard: Guard::default() } }
}

/// One guard over the parts: counts added, the first refusal kept, naming
/// its part (each part was guarded on its own when it pruned). A part that
/// owns nothing refuses nothing that matters (the controller's own account
/// once every object moved to Targets).
fn merge_prune(into: &mut Prune, p: Prune, target: Option<&str>) {
    into.objects.extend(p.objects);
    into.guard.prunable += p.guard.prunable;
    into.guard.owned += p.guard.owned;
    into.guard.max += p.guard.max;
    let matters = p.guard.owned > 0 || p.guard.prunable > 0;
    if into.guard.refused.is_none() && matters {
        let place = target.map_or("the controller's own account".into(), |t| format!("Target {t}"));
        into.guard.refused = p.guard.refused.map(|r| format!("{place}: {r}"));
    }
}
