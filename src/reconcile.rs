//! One reconcile pass over the whole desired state: observe, plan, execute
//! the stores (parameters, secrets), observe again only if a store changed
//! (new ARNs), plan and execute the services. Every object is isolated: one
//! failure is recorded and the others still run.

use std::collections::BTreeMap;
use std::sync::Arc;

use backon::{BackoffBuilder, Retryable};
use serde::Serialize;
use tracing::{info, warn};

use crate::aws::observe::{
    RevisionCache, SlowCache, bounded, describe_services, newest_revisions, observe, prune_reads, running_revisions,
};
use crate::aws::retry::Backoff;
use crate::aws::write::execute;
use crate::aws::{Aws, AwsError};
use crate::model::{Desired, ObjectKey};
use crate::observed::{ForeignValue, Observed};
use crate::plan::{ObjectPlan, Plan, Stores, draft_services, plan_stores};
use crate::reason::{Failure, Reason};

/// One read within a pass, again after transient failures (a throttling
/// storm), with the delays of the one policy; returns its error when they run out.
macro_rules! read_again_on_transient {
    ($read:expr) => {{
        let mut delays = Backoff::CALL.build();
        loop {
            match $read.await {
                Err(e) if e.transient => match delays.next() {
                    Some(d) => tokio::time::sleep(d).await,
                    None => return Err(e),
                },
                res => break res?,
            }
        }
    }};
}

#[derive(Debug, Clone, Serialize)]
pub struct ObjectResult {
    #[serde(flatten)]
    pub key: ObjectKey,
    /// Writes sent for this object.
    pub ops: usize,
    /// Why its writes failed, or (`held`) why they were not sent again this pass.
    pub error: Option<Failure>,
    /// Not executed this pass: an earlier failure of the same writes holds it back.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub held: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registered: Option<String>,
    /// The deployment an UpdateService started: `(cluster, service, deployment id)`.
    #[serde(skip)]
    pub deployment: Option<(String, String, String)>,
    /// A prune object's result (its key may also be a declared object's).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub pruned: bool,
}

#[derive(Debug, Clone)]
pub struct ApplyReport {
    /// Stores as planned before phase one, services as planned before phase two.
    pub plan: Plan,
    pub results: Vec<ObjectResult>,
    /// What the services were planned against (for the stale backstop).
    pub observed: crate::observed::Observed,
}

impl ObjectResult {
    /// An object whose writes were not sent, failed with why.
    pub fn failed(key: ObjectKey, f: Failure) -> Self {
        Self { key, ops: 0, error: Some(f), held: false, registered: None, deployment: None, pruned: false }
    }
}

impl ApplyReport {
    pub fn failed(&self) -> bool {
        self.plan.has_failures() || self.results.iter().any(|r| r.error.is_some())
    }

    /// The deployments this apply's UpdateService calls started, as rollouts to follow.
    pub fn started_rollouts(&self, at: f64) -> Vec<crate::rollout::Started> {
        self.results
            .iter()
            .filter_map(|r| {
                let (cluster, service_name, id) = r.deployment.as_ref()?;
                Some(crate::rollout::Started {
                    service: r.key.name.clone(),
                    cluster: cluster.clone(),
                    service_name: service_name.clone(),
                    deployment_id: id.clone(),
                    trigger: crate::rollout::Trigger::Apply,
                    detail: r.registered.as_deref().map_or_else(
                        || "service updated to the manifest's revision".to_string(),
                        |rev| format!("revision {}", crate::arn::task_definition_short(rev)),
                    ),
                    at,
                    wave: None,
                })
            })
            .collect()
    }
}

/// A pass after its stores: what was read, the stores' plans, and (in
/// apply) what their writes did.
pub struct StoresDone {
    pub observed: Observed,
    pub stores: Stores,
    pub results: Vec<ObjectResult>,
    pub plans: Vec<ObjectPlan>,
}

pub struct Reconciler {
    pub aws: Aws,
    pub controller_id: String,
    pub concurrency: usize,
    pub cache: RevisionCache,
    /// Roles and keys, re-read every `reverify` (zero in one-shot commands).
    pub slow: Arc<SlowCache>,
    pub prune: PruneMode,
}

/// `--prune` and `--max-prune`.
#[derive(Debug, Clone, Copy, Default)]
pub struct PruneMode {
    /// Act on what the plan shows as prunable (else it is only shown).
    pub enabled: bool,
    /// At most this many objects pruned in one pass (default: 25% of the owned, at least 1).
    pub max: Option<usize>,
}

impl Reconciler {
    /// Reads the account. A read that still fails transiently after the SDK's
    /// own retries (a throttling storm) is read again, a few times, with backoff.
    async fn observe(&self, desired: &Desired) -> Result<Observed, AwsError> {
        (|| observe(&self.aws, desired, &self.controller_id, &self.slow, self.concurrency))
            .retry(Backoff::CALL)
            .when(|e: &AwsError| e.transient)
            .notify(|e, after| warn!(error = %e, retry_in = ?after, "Reading the account failed; reading again"))
            .await
    }

    /// Plans the services in their three stages, reading between them only
    /// what the next stage names: the revisions services run that the applied
    /// tag does not vouch for, then the newest revision of families whose
    /// running revision differs. Each service is planned once.
    async fn plan_services(
        &self,
        services: crate::plan::Services<'_>,
        observed: &mut Observed,
    ) -> Result<Vec<ObjectPlan>, AwsError> {
        let ids = services.running_needed(observed);
        if !ids.is_empty() {
            read_again_on_transient!(running_revisions(&self.aws, &ids, observed, &self.cache, self.concurrency));
        }
        let rendering = services.render(observed);
        let families = rendering.newest_needed(observed);
        if !families.is_empty() {
            read_again_on_transient!(newest_revisions(&self.aws, &families, observed, &self.cache, self.concurrency));
        }
        Ok(rendering.decide(observed))
    }

    /// Plans without writing; `keep_rendered` for `render`.
    pub async fn plan(&self, desired: &Desired, keep_rendered: bool) -> Result<Plan, AwsError> {
        let stores = self.plan_stores_phase(desired).await?;
        self.plan_rest(desired, stores, BTreeMap::new(), keep_rendered).await
    }

    /// The first half of [`Reconciler::plan`]: the account read, the stores planned.
    pub async fn plan_stores_phase(&self, desired: &Desired) -> Result<StoresDone, AwsError> {
        let observed = self.observe(desired).await?;
        let mut stores = plan_stores(desired, &observed, &self.controller_id);
        let plans = std::mem::take(&mut stores.objects);
        Ok(StoresDone { observed, stores, results: Vec::new(), plans })
    }

    /// The second half: the services (with `foreign`, the other targets'
    /// values they read) and prune.
    pub async fn plan_rest(
        &self,
        desired: &Desired,
        s: StoresDone,
        foreign: BTreeMap<ObjectKey, ForeignValue>,
        keep_rendered: bool,
    ) -> Result<Plan, AwsError> {
        let StoresDone { mut observed, stores, plans, .. } = s;
        observed.foreign = foreign;
        let services = draft_services(desired, &observed, &self.controller_id, &stores, keep_rendered);
        let mut objects = plans;
        objects.extend(self.plan_services(services, &mut observed).await?);
        let prune = self.plan_prune(desired, &mut observed).await?;
        Ok(Plan { objects, prune })
    }

    /// Reads what prune decides on and plans it.
    async fn plan_prune(
        &self,
        desired: &Desired,
        observed: &mut Observed,
    ) -> Result<crate::plan::prune::Prune, AwsError> {
        read_again_on_transient!(prune_reads(
            &self.aws,
            desired,
            observed,
            &self.controller_id,
            &self.cache,
            &self.slow,
            self.concurrency
        ));
        Ok(crate::plan::prune::plan_prune(desired, observed, &self.controller_id, self.prune.max))
    }

    pub async fn apply(&self, desired: &Desired) -> Result<ApplyReport, AwsError> {
        self.apply_holding(desired, &|_| None).await
    }

    /// [`Reconciler::apply`], except that an object `hold` answers for is not
    /// executed: its result carries that failure instead (`run`'s error policy).
    ///
    /// Stores are planned and applied first; the services are planned once,
    /// after them, over an account read again only if a store was written (a
    /// created store brings the ARN the services reference).
    pub async fn apply_holding(
        &self,
        desired: &Desired,
        hold: &(dyn Fn(&ObjectPlan) -> Option<Failure> + Sync),
    ) -> Result<ApplyReport, AwsError> {
        let stores = self.apply_stores_phase(desired, hold).await?;
        self.apply_rest(desired, stores, BTreeMap::new(), hold).await
    }

    /// The first half of [`Reconciler::apply_holding`]: the stores planned
    /// and written, and the account read again if one was written.
    pub async fn apply_stores_phase(
        &self,
        desired: &Desired,
        hold: &(dyn Fn(&ObjectPlan) -> Option<Failure> + Sync),
    ) -> Result<StoresDone, AwsError> {
        let mut observed = self.observe(desired).await?;
        let mut stores = plan_stores(desired, &observed, &self.controller_id);
        let (results, plans) = self.run_objects(desired, std::mem::take(&mut stores.objects), hold).await;
        if results.iter().any(|r| r.ops > 0) {
            // Only stores changed since: the revisions read so far still hold.
            let revisions = std::mem::take(&mut observed.revisions);
            let newest = std::mem::take(&mut observed.newest_revisions);
            observed = self.observe(desired).await?;
            observed.revisions = revisions;
            observed.newest_revisions = newest;
        }
        Ok(StoresDone { observed, stores, results, plans })
    }

    /// The second half: the services (with `foreign`, the other targets'
    /// values they read, as those targets' stores left them) and prune.
    pub async fn apply_rest(
        &self,
        desired: &Desired,
        s: StoresDone,
        foreign: BTreeMap<ObjectKey, ForeignValue>,
        hold: &(dyn Fn(&ObjectPlan) -> Option<Failure> + Sync),
    ) -> Result<ApplyReport, AwsError> {
        let StoresDone { mut observed, stores, mut results, plans: store_plans } = s;
        observed.foreign = foreign;
        let drafts = draft_services(desired, &observed, &self.controller_id, &stores, false);
        let services: Vec<ObjectPlan> = self
            .plan_services(drafts, &mut observed)
            .await?
            .into_iter()
            .map(|mut o| {
                o.block_if_waiting();
                o
            })
            .collect();
        let (service_results, services) = self.run_objects(desired, services, hold).await;
        if service_results.iter().any(|r| r.ops > 0) {
            // What deployments run now decides what prune may deregister.
            let pairs = || desired.services.values().map(|s| (s.cluster.as_str(), s.service_name.as_str()));
            observed.services = read_again_on_transient!(describe_services(&self.aws, pairs()));
        }
        results.extend(service_results);
        let prune = self.plan_prune(desired, &mut observed).await?;
        if self.prune.enabled && prune.allowed() {
            let (prune_results, _) = self.run_objects(desired, prune.objects.clone(), hold).await;
            results.extend(prune_results.into_iter().map(|r| ObjectResult { pruned: true, ..r }));
        } else if let Some(why) = &prune.guard.refused {
            warn!(prunable = prune.guard.prunable, reason = %why, "Prune refused");
        }
        let mut objects = store_plans;
        objects.extend(services);
        Ok(ApplyReport { plan: Plan { objects, prune }, results, observed })
    }

    /// Executes the objects; returns their results and the objects back (moved, not copied).
    async fn run_objects(
        &self,
        desired: &Desired,
        objects: Vec<ObjectPlan>,
        hold: &(dyn Fn(&ObjectPlan) -> Option<Failure> + Sync),
    ) -> (Vec<ObjectResult>, Vec<ObjectPlan>) {
        let (held, objects): (Vec<_>, Vec<_>) =
            objects.into_iter().map(|o| (hold(&o), o)).partition(|(h, _)| h.is_some());
        let mut pairs: Vec<(ObjectResult, ObjectPlan)> = held
            .into_iter()
            .map(|(h, obj)| {
                let result = ObjectResult {
                    key: obj.key.clone(),
                    ops: 0,
                    error: h,
                    held: true,
                    registered: None,
                    deployment: None,
                    pruned: false,
                };
                (result, obj)
            })
            .collect();
        let ran = bounded(objects.into_iter().map(|(_, o)| o).collect(), self.concurrency, |obj| {
            let aws = self.aws.clone();
            let slow = self.slow.clone();
            // Audit: every write is logged under the manifest file (and tenant)
            // it came from; a pruned object's manifest is gone.
            let origin = desired.origin(&obj.key);
            let span = tracing::info_span!(
                "write",
                object = %obj.key,
                source = %origin.map_or("(removed from the manifests)".into(), |o| format!("{}:{}", o.path.display(), o.line)),
                tenant = %origin.and_then(|o| o.tenant.as_deref()).unwrap_or("-"),
            );
            async move {
                // Whatever happens, a role this object writes is read afresh next time.
                for op in obj.changes.iter().flat_map(|c| &c.ops) {
                    if let Some(role) = op.role_name() {
                        slow.forget_role(role);
                    }
                    if let crate::plan::Op::DeregisterTaskDefinition { arn } = op
                        && let Some(family) = crate::plan::prune::family_of(arn)
                    {
                        slow.forget_family(family);
                    }
                }
                let key = obj.key.clone();
                if obj.problems.iter().any(|p| p.kind.blocks()) {
                    return (
                        ObjectResult {
                            key,
                            ops: 0,
                            error: None,
                            held: false,
                            registered: None,
                            deployment: None,
                            pruned: false,
                        },
                        obj,
                    );
                }
                let result = match tracing::Instrument::instrument(execute(&aws, &obj), span).await {
                    Ok(done) => {
                        if done.ops > 0 {
                            info!(kind = %key.kind, name = %key.name, writes = done.ops, "Applied");
                        }
                        ObjectResult {
                            key,
                            ops: done.ops,
                            error: None,
                            held: false,
                            registered: done.registered,
                            deployment: done.deployment,
                            pruned: false,
                        }
                    }
                    Err(e) => {
                        warn!(kind = %key.kind, name = %key.name, error = %e, "Apply failed");
                        ObjectResult {
                            key,
                            ops: 0,
                            error: Some(e.failure()),
                            held: false,
                            registered: None,
                            deployment: None,
                            pruned: false,
                        }
                    }
                };
                (result, obj)
            }
        })
        .await;
        pairs.extend(ran);
        // An AccessDenied names the statement of `secretwire policy` that grants it.
        if pairs.iter().any(|(r, _)| r.error.as_ref().is_some_and(|f| f.reason == Reason::AccessDenied)) {
            // The families these plans register into (a service may keep the one it runs).
            let families: BTreeMap<String, String> = pairs
                .iter()
                .flat_map(|(_, o)| o.changes.iter().flat_map(|c| &c.ops).map(move |op| (o, op)))
                .filter_map(|(o, op)| match op {
                    crate::plan::Op::RegisterTaskDefinition { body, .. } => {
                        Some((o.key.name.clone(), body["family"].as_str()?.to_string()))
                    }
                    _ => None,
                })
                .collect();
            let wants = crate::policy::Wants {
                run: true,
                notify_eventbridge: true,
                prune: true,
                controller_id: &self.controller_id,
                lease: None,
            };
            let policy = crate::policy::controller_policy(desired, &self.aws.scope, wants, &families);
            for f in pairs.iter_mut().filter_map(|(r, _)| r.error.as_mut()).filter(|f| f.reason == Reason::AccessDenied)
            {
                if let Some((action, _)) = crate::reason::denied_action(&f.message)
                    && !f.message.contains("secretwire policy")
                {
                    match crate::policy::granting_statement(&policy, &action) {
                        Some(sid) => f.message.push_str(&format!("; `secretwire policy` grants it in statement {sid}")),
                        None => f.message.push_str("; `secretwire policy` does not grant it"),
                    }
                }
            }
        }
        pairs.into_iter().unzip()
    }
}

/// AWS calls made so far, and how many were writes.
pub fn call_summary(tally: &BTreeMap<String, u64>) -> (u64, u64) {
    let total = tally.values().sum();
    let writes = tally
        .iter()
        .filter(|(k, _)| crate::metrics::is_write(k.split_once(':').map_or(k.as_str(), |(_, op)| op)))
        .map(|(_, n)| *n)
        .sum();
    (total, writes)
}
