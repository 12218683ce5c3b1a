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

use crate::aws::limit::RateLimits;
use crate::aws::{Aws, AwsError};
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
        let mut fleet = Fleet { members: vec![Member { target: None, reconciler: Ok(home) }] };
        fleet.sync(desired, limits).await;
        fleet
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
            let mut plan = self.home().plan(desired, keep_rendered).await?;
            self.warn_unreachable(desired, &mut plan.objects);
            return Ok(plan);
        }
        let parts = split::split(desired);
        let halves = join_all(self.pair(&parts).map(|(p, m)| async move {
            match m {
                Ok(r) => r.plan_stores_phase(&p.desired).await,
                Err(e) => Err(e),
            }
        }))
        .await;
        let foreign = foreign_values(&parts, &halves, self);
        let plans = join_all(self.pair(&parts).zip(halves).zip(foreign).map(|(((p, m), half), foreign)| async move {
            match (m, half) {
                (Ok(r), Ok(s)) => r.plan_rest(&p.desired, s, foreign, keep_rendered).await.map_err(|e| (p, e)),
                (_, Err(e)) | (Err(e), _) => Err((p, e)),
            }
        }))
        .await;
        let mut merged = Plan::default();
        for (plan, part) in plans.into_iter().zip(&parts) {
            let plan = plan.unwrap_or_else(|(p, e)| failed_part(p, &e));
            merged.objects.extend(plan.objects);
            merge_prune(&mut merged.prune, plan.prune, part.target.as_deref());
        }
        self.warn_unreachable(desired, &mut merged.objects);
        Ok(merged)
    }

    /// Applies every part: all stores, then all services and prune.
    pub async fn apply(&self, desired: &Desired) -> Result<ApplyReport, AwsError> {
        self.apply_holding(desired, &|_| None).await
    }

    /// [`Fleet::apply`] with `run`'s error policy (see [`Reconciler::apply_holding`]).
    /// The report's observation holds every part's values, keys and services
    /// (a Target's services under [`crate::model::ServiceDef::observed_key`]).
    pub async fn apply_holding(
        &self,
        desired: &Desired,
        hold: &(dyn Fn(&ObjectPlan) -> Option<Failure> + Sync),
    ) -> Result<ApplyReport, AwsError> {
        if self.single(desired) {
            let mut report = self.home().apply_holding(desired, hold).await?;
            self.warn_unreachable(desired, &mut report.plan.objects);
            return Ok(report);
        }
        let parts = split::split(desired);
        let halves = join_all(self.pair(&parts).map(|(p, m)| async move {
            match m {
                Ok(r) => r.apply_stores_phase(&p.desired, hold).await,
                Err(e) => Err(e),
            }
        }))
        .await;
        let foreign = foreign_values(&parts, &halves, self);
        let reports =
            join_all(self.pair(&parts).zip(halves).zip(foreign).map(|(((p, m), half), foreign)| async move {
                match (m, half) {
                    (Ok(r), Ok(s)) => r.apply_rest(&p.desired, s, foreign, hold).await.map_err(|e| (p, e)),
                    (_, Err(e)) | (Err(e), _) => Err((p, e)),
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
            match parts[i].target.as_deref() {
                None => merged.observed = report.observed,
                Some(t) => merge_observed(&mut merged.observed, report.observed, t),
            }
        }
        self.warn_unreachable(desired, &mut merged.plan.objects);
        Ok(merged)
    }

    /// A Service that reads a value by ARN in an account and region
    /// secretwire has no role in is warned about: no rule there forwards its
    /// rotations, and the stale backstop cannot read its change time.
    fn warn_unreachable(&self, desired: &Desired, objects: &mut [ObjectPlan]) {
        let scopes = self.scopes();
        for o in objects.iter_mut().filter(|o| o.key.kind == crate::model::Kind::Service) {
            let Some(svc) = desired.services.get(&o.key.name) else { continue };
            for arn in svc.value_refs().filter_map(|r| match r {
                crate::model::ValueRef::Raw { value_from, .. } => Some(value_from.as_str()),
                crate::model::ValueRef::Secret { id, .. } if id.starts_with("arn:") => Some(id.as_str()),
                _ => None,
            }) {
                let Some(a) = crate::arn::Arn::parse(arn) else { continue };
                if scopes.iter().any(|s| s.account == a.account && s.region == a.region) {
                    continue;
                }
                o.problems.push(Problem {
                    kind: ProblemKind::Warning,
                    reason: Reason::CrossAccount,
                    resource: arn.to_string(),
                    message: format!(
                        "is in account {} ({}), where secretwire has no Target: its rotations are not seen (no \
                         rule there forwards them, and the stale backstop cannot read it); declare a Target for \
                         that account and region",
                        a.account, a.region
                    ),
                });
            }
        }
    }

    /// Connects the Targets the manifests declare now that are not connected
    /// (new, or whose role could not be assumed before) and drops the ones
    /// no longer declared. `run` calls it before every pass.
    pub async fn sync(&mut self, desired: &Desired, limits: &RateLimits) {
        self.members.retain(|m| m.target.as_ref().is_none_or(|t| desired.targets.contains_key(t)));
        let home = self.home();
        let missing: Vec<&crate::model::TargetDef> = desired
            .targets
            .values()
            .filter(|t| !self.members.iter().any(|m| m.target.as_deref() == Some(&t.name) && m.reconciler.is_ok()))
            .collect();
        let connected = join_all(missing.into_iter().map(|t| connect_target(home, t, limits))).await;
        for m in connected {
            self.members.retain(|x| x.target != m.target);
            self.members.push(m);
        }
        self.members[1..].sort_by(|a, b| a.target.cmp(&b.target));
    }

    /// The reconciler of the part in `account` and `region`, if one is connected.
    pub fn in_scope(&self, account: &str, region: &str) -> Option<&Reconciler> {
        self.members
            .iter()
            .filter_map(|m| m.reconciler.as_ref().ok())
            .find(|r| r.aws.scope.account == account && r.aws.scope.region == region)
    }

    /// Every connected part's account and region (the controller's own first).
    pub fn scopes(&self) -> Vec<crate::arn::Scope> {
        self.members.iter().filter_map(|m| m.reconciler.as_ref().ok()).map(|r| r.aws.scope.clone()).collect()
    }

    /// Each part with its own reconciler, found by its Target's name (never
    /// by position: a part must never be reconciled with another's clients).
    fn pair<'a>(&'a self, parts: &'a [Part]) -> impl Iterator<Item = (&'a Part, Result<&'a Reconciler, AwsError>)> {
        parts.iter().map(|p| {
            let m = self.members.iter().find(|m| m.target == p.target);
            let r = match m.map(|m| &m.reconciler) {
                Some(Ok(r)) => Ok(r),
                Some(Err(e)) => Err(e.clone()),
                None => Err(AwsError::other("Target", format!("Target {:?} is not connected", p.target))),
            };
            (p, r)
        })
    }
}

/// A Target's reconciler: the controller's settings, the Target's clients and owner id.
async fn connect_target(home: &Reconciler, t: &crate::model::TargetDef, limits: &RateLimits) -> Member {
    let own = &home.aws.scope;
    if t.account == own.account && t.region == own.region {
        let why = format!(
            "Target {} is the controller's own account and region; leave spec.target out for objects there",
            t.name
        );
        return Member { target: Some(t.name.clone()), reconciler: Err(AwsError::other("Target", why)) };
    }
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

/// Which clients reach a service's account (rollouts and redeploys are per service).
pub trait AwsFor: Sync {
    fn aws_for(&self, service: &str) -> &Aws;
    /// The clients of the account a changed value lives in (its ARN says
    /// which; a bare name is the controller's own account's).
    fn aws_for_value(&self, value: &crate::model::ChangedValue) -> &Aws;
}

impl AwsFor for Aws {
    fn aws_for(&self, _: &str) -> &Aws {
        self
    }
    fn aws_for_value(&self, _: &crate::model::ChangedValue) -> &Aws {
        self
    }
}

/// A service's clients: its Target's, else the controller's own.
pub struct ByService<'a> {
    pub fleet: &'a Fleet,
    pub desired: &'a Desired,
}

impl AwsFor for ByService<'_> {
    fn aws_for(&self, service: &str) -> &Aws {
        let target = self.desired.services.get(service).and_then(|s| s.target.as_deref());
        self.fleet.member(target).map_or(&self.fleet.home().aws, |r| &r.aws)
    }
    fn aws_for_value(&self, value: &crate::model::ChangedValue) -> &Aws {
        let (crate::model::ChangedValue::Secret(id) | crate::model::ChangedValue::Parameter(id)) = value;
        crate::arn::Arn::parse(id)
            .and_then(|a| self.fleet.in_scope(a.account, a.region))
            .map_or(&self.fleet.home().aws, |r| &r.aws)
    }
}

/// Groups items by the account their clients reach (first seen first):
/// reads are batched per account, since each has its own clients and limits.
pub fn by_account<'a, T>(items: impl IntoIterator<Item = T>, aws_of: impl Fn(&T) -> &'a Aws) -> Vec<(&'a Aws, Vec<T>)> {
    let mut groups: Vec<(&'a Aws, Vec<T>)> = Vec::new();
    for item in items {
        let aws = aws_of(&item);
        match groups.iter_mut().find(|(a, _)| a.target == aws.target) {
            Some((_, v)) => v.push(item),
            None => groups.push((aws, vec![item])),
        }
    }
    groups
}

/// Adds a Target's observation to the merged one: values and keys by their
/// names (unique across the repo), services under [`ServiceDef::observed_key`]
/// and roles as `<target>/<name>` (equal names in two accounts stay apart).
///
/// [`ServiceDef::observed_key`]: crate::model::ServiceDef::observed_key
fn merge_observed(into: &mut crate::observed::Observed, o: crate::observed::Observed, target: &str) {
    into.parameters.extend(o.parameters);
    into.secrets.extend(o.secrets);
    into.keys.extend(o.keys);
    into.roles.extend(o.roles.into_iter().map(|(n, r)| (format!("{target}/{n}"), r)));
    into.services.extend(o.services.into_iter().map(|((c, s), v)| ((format!("{target}/{c}"), s), v)));
    into.revisions.extend(o.revisions);
    into.revisions_missing.extend(o.revisions_missing);
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
                            let scope = fleet
                                .member(parts[i].target.as_deref())
                                .map_or_else(|| fleet.home().aws.scope.clone(), |r| r.aws.scope.clone());
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
