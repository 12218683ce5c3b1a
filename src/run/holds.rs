//! The error policy of `run` (kube-rs `error_policy`: the error decides the
//! requeue). An object whose writes failed is *held*: its writes are not sent
//! again until the hold ends or what it would send changes (a manifest edit,
//! or AWS changing under it). A transient failure holds for a per-object
//! exponential backoff with full jitter, capped by the resync interval; a
//! terminal one (AccessDenied, a conflict, a missing `fromEnv` variable, a
//! raced create) for `--terminal-retry-interval`. Pure: the caller passes
//! `now` and the jittered delay comes from the one retry policy.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::{Duration, Instant};

use crate::aws::retry::Backoff;
use crate::model::ObjectKey;
use crate::plan::ObjectPlan;
use crate::reason::Failure;

#[derive(Debug, Clone)]
pub struct Hold {
    pub failure: Failure,
    pub until: Instant,
    failures: u32,
    writes: u64,
}

#[derive(Debug)]
pub struct Holds {
    backoff: Backoff,
    terminal: Duration,
    held: BTreeMap<ObjectKey, Hold>,
}

/// What an object's plan would send, as a digest: a hold lasts only while
/// the object would send the same writes again.
pub fn writes_digest(plan: &ObjectPlan) -> u64 {
    let mut h = DefaultHasher::new();
    for op in plan.changes.iter().flat_map(|c| &c.ops) {
        format!("{op:?}").hash(&mut h);
    }
    h.finish()
}

impl Holds {
    pub fn new(resync: Duration, terminal: Duration) -> Self {
        Self { backoff: Backoff::object(resync), terminal, held: BTreeMap::new() }
    }

    /// The hold that keeps this plan's writes back now, if any.
    pub fn holding(&self, plan: &ObjectPlan, now: Instant) -> Option<&Hold> {
        self.held.get(&plan.key).filter(|h| now < h.until && h.writes == writes_digest(plan))
    }

    /// Records what became of an object's writes this pass.
    pub fn record(&mut self, plan: &ObjectPlan, result: Result<(), &Failure>, now: Instant) {
        let failure = match result {
            Ok(()) => {
                self.held.remove(&plan.key);
                return;
            }
            Err(f) => f.clone(),
        };
        let writes = writes_digest(plan);
        let failures = self.held.get(&plan.key).filter(|h| h.writes == writes).map_or(0, |h| h.failures + 1);
        let wait = if failure.transient() { self.backoff.delay(failures) } else { self.terminal };
        self.held.insert(plan.key.clone(), Hold { failure, until: now + wait, failures, writes });
    }

    /// Forgets objects that are no longer declared.
    pub fn retain(&mut self, keep: impl Fn(&ObjectKey) -> bool) {
        self.held.retain(|k, _| keep(k));
    }

    /// When the earliest transient hold ends: the next retry pass.
    pub fn next_retry(&self, now: Instant) -> Option<Instant> {
        self.held.values().filter(|h| h.failure.transient() && h.until > now).map(|h| h.until).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Kind;
    use crate::plan::{Action, Change, Op};
    use crate::reason::{Reason, Retry};

    fn plan(tag: &str) -> ObjectPlan {
        let mut p = ObjectPlan::new(ObjectKey::new(Kind::Parameter, "/web/db"));
        p.changes.push(Change {
            diff: Vec::new(),
            action: Action::Update,
            resource: "ssm parameter /web/db".into(),
            detail: String::new(),
            ops: vec![Op::TagParameter { name: "/web/db".into(), tags: [("team".into(), tag.into())].into() }],
        });
        p
    }

    fn failure(retry: Retry) -> Failure {
        Failure { reason: Reason::AccessDenied, retry, message: "denied".into() }
    }

    #[test]
    fn a_terminal_failure_holds_until_the_interval_or_until_the_writes_change() {
        let t0 = Instant::now();
        let mut h = Holds::new(Duration::from_secs(300), Duration::from_secs(3600));
        let p = plan("a");
        h.record(&p, Err(&failure(Retry::Terminal)), t0);
        assert!(h.holding(&p, t0 + Duration::from_secs(3599)).is_some());
        assert!(h.holding(&p, t0 + Duration::from_secs(3600)).is_none(), "the long interval passed");
        assert!(h.holding(&plan("b"), t0).is_none(), "other writes (an edited manifest) are tried at once");
        assert_eq!(h.next_retry(t0), None, "a terminal failure schedules no retry pass");
        h.record(&p, Ok(()), t0);
        assert!(h.holding(&p, t0).is_none());
    }

    #[test]
    fn transient_failures_back_off_exponentially_per_object_capped_by_the_resync() {
        let t0 = Instant::now();
        let resync = Duration::from_secs(60);
        let mut h = Holds::new(resync, Duration::from_secs(3600));
        let p = plan("a");
        let mut last = Duration::ZERO;
        for n in 0..12u32 {
            h.record(&p, Err(&failure(Retry::Transient)), t0);
            let hold = h.holding(&p, t0).map(|x| x.until - t0).unwrap_or_default();
            let ceiling = Backoff::object(resync).ceiling(n);
            assert!(hold <= ceiling && hold <= resync, "{n}: {hold:?} over {ceiling:?}");
            last = last.max(hold);
        }
        assert!(last > Duration::from_secs(1), "delays grow: {last:?}");
        assert!(h.next_retry(t0).is_some());
        h.retain(|_| false);
        assert_eq!(h.next_retry(t0), None);
    }
}
