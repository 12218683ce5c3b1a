//! The rollout tracker: a pure state machine over the rollouts in progress
//! and the redeploys waiting for a slot. It decides when each open rollout is
//! read again (a backoff schedule from its start, so a lost ECS event only
//! delays the answer; nothing is read while none is open), when one times
//! out, which waiting redeploy starts when a slot frees up (at most
//! `max_parallel` in progress, in order of arrival), and when a wave stops:
//! the first rollout to end of one value change's wave failed, so the rest
//! of that wave stay waiting (held) instead of breaking every reader, until
//! a new change for them arrives.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use super::judge::Sighting;
use super::{Ended, Outcome, Progress, Started, Trigger};
use crate::events::{DeploymentEvent, DeploymentState};

/// First read of an open rollout this long after it started, then doubling.
const FIRST_POLL: Duration = Duration::from_secs(5);
/// Reads of one rollout are at most this far apart.
const MAX_POLL: Duration = Duration::from_secs(60);
/// Rollouts due within this much of each other are read in one batch.
const COALESCE: Duration = Duration::from_secs(5);

/// A redeploy waiting for a slot (or held by a stopped wave).
#[derive(Debug, Clone, PartialEq)]
pub struct Waiting {
    pub service: String,
    pub trigger: Trigger,
    pub detail: String,
    /// The PRIMARY deployment seen when it was decided (a lost answer is not sent twice).
    pub before: Option<String>,
    pub wave: Option<String>,
    /// Seconds since the epoch it started waiting.
    pub since: f64,
    /// Held because its wave stopped: why.
    pub held: Option<String>,
    /// Held: the service whose failed rollout stopped the wave.
    pub failed: Option<String>,
}

#[derive(Debug, Clone)]
struct Open {
    started: Started,
    deadline: Instant,
    next_poll: Instant,
    polls: u32,
    progress: Progress,
}

/// What the tracker asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    Ended(Ended),
    /// Start this redeploy now (a slot is free).
    Start(Waiting),
    /// Its wave stopped: it stays waiting, held.
    Held(Waiting),
}

#[derive(Debug)]
pub struct Tracker {
    timeout: Duration,
    first_poll: Duration,
    max_parallel: usize,
    open: BTreeMap<String, Open>,
    waiting: VecDeque<Waiting>,
    /// Waves stopped by a failed first rollout: why.
    stopped: BTreeMap<String, String>,
    /// Waves whose first rollout to end completed: later failures do not stop them.
    proven: BTreeSet<String>,
}

impl Tracker {
    pub fn new(timeout: Duration, max_parallel: usize) -> Self {
        Self {
            timeout,
            first_poll: FIRST_POLL,
            max_parallel: max_parallel.max(1),
            open: BTreeMap::new(),
            waiting: VecDeque::new(),
            stopped: BTreeMap::new(),
            proven: BTreeSet::new(),
        }
    }

    /// Reads an open rollout first this long after it started (then doubling).
    pub fn first_poll(mut self, d: Duration) -> Self {
        self.first_poll = d;
        self
    }

    pub fn in_progress(&self) -> usize {
        self.open.len()
    }

    pub fn open_rollouts(&self) -> impl Iterator<Item = (&Started, Progress)> {
        self.open.values().map(|o| (&o.started, o.progress))
    }

    /// Whether the stale backstop must leave the service alone: a redeploy of
    /// it waits for a slot or is held by a stopped wave.
    pub fn holds(&self, service: &str) -> bool {
        self.waiting.iter().any(|w| w.service == service)
    }

    /// A redeploy is wanted: start it now (returned) if a slot is free and
    /// nothing waits before it, else it waits in order. A new change for a
    /// service that waits (or is held) replaces that entry: a new change
    /// releases a held service.
    pub fn admit(&mut self, w: Waiting) -> Option<Waiting> {
        let queued = self.waiting.iter().position(|q| q.service == w.service);
        if let Some(i) = queued {
            self.waiting.remove(i);
        }
        let ahead = self.waiting.iter().any(|q| q.held.is_none());
        if !ahead && self.open.len() < self.max_parallel {
            return Some(w);
        }
        match queued {
            // Keeps its place in the line.
            Some(i) => self.waiting.insert(i.min(self.waiting.len()), w),
            None => self.waiting.push_back(w),
        }
        None
    }

    /// Drops what waits for `service` (its manifest changed, or someone
    /// deployed it by hand: the held change is served or superseded).
    pub fn release(&mut self, service: &str) -> Option<Waiting> {
        let i = self.waiting.iter().position(|q| q.service == service)?;
        self.waiting.remove(i)
    }

    /// A deployment started; an open rollout of the same service is superseded.
    pub fn open(&mut self, started: Started, now: Instant, wall: f64) -> Vec<Effect> {
        let open = Open {
            deadline: now + self.timeout,
            next_poll: now + self.first_poll,
            polls: 0,
            progress: Progress::default(),
            started: started.clone(),
        };
        match self.open.insert(started.service.clone(), open) {
            Some(old) if old.started.deployment_id != started.deployment_id => {
                let ended = Ended {
                    started: old.started,
                    outcome: Outcome::Superseded,
                    reason: format!("replaced by deployment {}", started.deployment_id),
                    at: wall,
                    progress: old.progress,
                };
                // Superseded is not a failure: no wave stops, and no slot is freed (the new one took it).
                vec![Effect::Ended(ended)]
            }
            _ => Vec::new(),
        }
    }

    /// When the tracker next needs the loop: a read or a deadline.
    pub fn next_wake(&self) -> Option<Instant> {
        self.open.values().map(|o| o.next_poll.min(o.deadline)).min()
    }

    /// The rollouts to read now (those due, and those due soon: one batch).
    /// Each is scheduled again further out, doubling up to a minute.
    pub fn due(&mut self, now: Instant) -> Vec<Started> {
        if !self.open.values().any(|o| o.next_poll <= now) {
            return Vec::new();
        }
        let mut out = Vec::new();
        for o in self.open.values_mut().filter(|o| o.next_poll <= now + COALESCE) {
            o.polls = o.polls.saturating_add(1);
            let gap = self.first_poll.saturating_mul(1 << o.polls.min(4)).min(MAX_POLL);
            o.next_poll = now + gap;
            out.push(o.started.clone());
        }
        out
    }

    /// What a read of `service` found for its open rollout `deployment_id`.
    pub fn sighted(&mut self, service: &str, deployment_id: &str, s: Sighting, wall: f64) -> Vec<Effect> {
        let Some(o) = self.open.get_mut(service).filter(|o| o.started.deployment_id == deployment_id) else {
            return Vec::new();
        };
        match s {
            Sighting::InProgress(p) => {
                o.progress = p;
                Vec::new()
            }
            Sighting::Ended { outcome, reason, progress } => self.end(service, outcome, reason, progress, wall),
        }
    }

    /// An ECS deployment event. COMPLETED for an open rollout ends it at
    /// once; FAILED, or a rollback starting on its service, makes it due for
    /// a read now (the read tells failed from rolled back, and the stopped
    /// tasks are read for the diagnosis). Returns what ended.
    pub fn event(&mut self, ev: &DeploymentEvent, now: Instant, wall: f64) -> Vec<Effect> {
        let mine = self.open.iter().find(|(_, o)| o.started.deployment_id == ev.deployment_id).map(|(s, _)| s.clone());
        match (ev.state, mine) {
            (DeploymentState::Completed, Some(service)) => {
                let p = self.open.get(&service).map(|o| o.progress).unwrap_or_default();
                self.end(&service, Outcome::Completed, ev.reason.clone(), p, wall)
            }
            (DeploymentState::Failed, Some(service)) => {
                if let Some(o) = self.open.get_mut(&service) {
                    o.next_poll = now;
                }
                Vec::new()
            }
            _ if ev.is_rollback() => {
                for o in self.open.values_mut().filter(|o| service_arn_names(&ev.service_arn, &o.started)) {
                    o.next_poll = now;
                }
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    /// Rollouts past their deadline end as timed out.
    pub fn expire(&mut self, now: Instant, wall: f64) -> Vec<Effect> {
        let late: Vec<String> = self.open.iter().filter(|(_, o)| o.deadline <= now).map(|(s, _)| s.clone()).collect();
        let mut out = Vec::new();
        for service in late {
            let p = self.open.get(&service).map(|o| o.progress).unwrap_or_default();
            let why = format!("not ended within {} s", self.timeout.as_secs());
            out.extend(self.end(&service, Outcome::TimedOut, why, p, wall));
        }
        out
    }

    fn end(&mut self, service: &str, outcome: Outcome, reason: String, progress: Progress, wall: f64) -> Vec<Effect> {
        let Some(o) = self.open.remove(service) else { return Vec::new() };
        let ended = Ended { started: o.started, outcome, reason, at: wall, progress };
        let mut out = Vec::new();
        if let Some(wave) = ended.started.wave.clone() {
            if outcome == Outcome::Completed {
                self.proven.insert(wave);
            } else if outcome.failed() && !self.proven.contains(&wave) && !self.stopped.contains_key(&wave) {
                let why = format!(
                    "held: the rollout of {} for the same change failed ({}); a new change releases it",
                    ended.started.service,
                    outcome.label()
                );
                for w in self.waiting.iter_mut().filter(|w| w.wave.as_deref() == Some(&wave)) {
                    w.held = Some(why.clone());
                    w.failed = Some(ended.started.service.clone());
                    out.push(Effect::Held(w.clone()));
                }
                self.stopped.insert(wave, why);
            }
        }
        out.insert(0, Effect::Ended(ended));
        out.extend(self.fill());
        self.forget_waves();
        out
    }

    /// Starts waiting redeploys, in order, while slots are free.
    fn fill(&mut self) -> Vec<Effect> {
        let mut out = Vec::new();
        while self.open.len() + out.len() < self.max_parallel {
            let Some(i) = self.waiting.iter().position(|w| w.held.is_none()) else { break };
            if let Some(w) = self.waiting.remove(i) {
                out.push(Effect::Start(w));
            }
        }
        out
    }

    /// Wave records nothing refers to any more.
    fn forget_waves(&mut self) {
        let live: BTreeSet<&str> = self
            .waiting
            .iter()
            .filter_map(|w| w.wave.as_deref())
            .chain(self.open.values().filter_map(|o| o.started.wave.as_deref()))
            .collect();
        self.proven.retain(|w| live.contains(w.as_str()));
        self.stopped.retain(|w, _| live.contains(w.as_str()));
    }
}

/// Whether a service ARN (`service/<cluster>/<name>`, or the older
/// `service/<name>`) is the service of `s`.
fn service_arn_names(arn: &str, s: &Started) -> bool {
    let resource = arn.rsplit_once(":service/").map_or(arn, |(_, r)| r);
    match resource.split_once('/') {
        Some((cluster, name)) => name == s.service_name && s.cluster.rsplit('/').next() == Some(cluster),
        None => resource == s.service_name,
    }
}
