//! Debounce and acknowledgement as a pure state machine: received messages,
//! redeploy outcomes and time go in (`Debouncer::on`), actions come out
//! (redeploy these services, delete these messages, return that one to the
//! queue). Changes to one service within the window become one redeploy; a
//! message is deleted only when every redeploy it asked for succeeded or was
//! found unnecessary, and goes back to the queue (undeleted, with a delay
//! that grows with its receive count) when one failed. No I/O, no clock:
//! the caller passes `now`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use crate::aws::queue::Receipt;
use crate::events::{Event, Parsed, ValueChange};

/// One received message, read once, with the services that read the value
/// its event names (empty when it names none or is not a change).
#[derive(Debug, Clone)]
pub struct Received {
    pub receipt: Receipt,
    pub receive_count: u32,
    pub event: Event,
    pub readers: BTreeSet<String>,
}

#[derive(Debug, Clone)]
pub enum Input {
    Received(Vec<Received>),
    /// Time passed: redeploy what is due.
    Tick,
    /// What became of the redeploys an `Action::Redeploy` asked for.
    Done(Vec<(String, Outcome)>),
    /// Stop: every held message goes back to the queue at once.
    Shutdown,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A forced deployment started.
    Deployed,
    /// A forced deployment waits for a rollout slot: as good as started (the
    /// rollouts room starts it; the stale backstop covers a crash before).
    Queued,
    /// The newest deployment, started at `start`, already serves every change.
    Fresh { start: f64 },
    /// Its deployment controller is not ECS: reported on its status, not retried.
    Unsupported,
    /// No longer in the manifests: nothing to do.
    Gone,
    /// The redeploy failed: its messages go back to the queue.
    Failed,
    /// The service could not be read; held, and tried again after `retry_in`.
    Unread { retry_in: Duration },
}

/// A service whose window closed, with the changes it answers.
#[derive(Debug, Clone, PartialEq)]
pub struct Due {
    pub service: String,
    pub changes: Vec<ValueChange>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Count one event by outcome (`secretwire_events_total{outcome}`).
    Count(&'static str),
    Redeploy(Vec<Due>),
    Delete(Vec<Receipt>),
    /// Make the message visible again after `after`, undeleted.
    Release {
        receipt: Receipt,
        after: Duration,
    },
    /// The stale backstop must not answer the service's changes up to `through` again.
    Answered {
        service: String,
        through: f64,
    },
}

#[derive(Debug, Clone)]
struct Held {
    change: ValueChange,
    event_id: String,
    message_id: String,
}

#[derive(Debug)]
struct Pending {
    due: Instant,
    changes: Vec<Held>,
}

#[derive(Debug)]
struct Tracked {
    receipt: Receipt,
    receive_count: u32,
    outstanding: BTreeSet<String>,
    failed: bool,
}

/// `(event id, service)` pairs already handled, so a second delivery of the
/// same event is not deployed twice. Bounded: the oldest are forgotten.
#[derive(Debug, Default)]
struct Handled {
    set: HashSet<(String, String)>,
    order: VecDeque<(String, String)>,
}

impl Handled {
    const MAX: usize = 50_000;
    fn insert(&mut self, k: (String, String)) {
        if self.set.insert(k.clone()) {
            self.order.push_back(k);
            if self.order.len() > Self::MAX
                && let Some(old) = self.order.pop_front()
            {
                self.set.remove(&old);
            }
        }
    }
    fn contains(&self, event: &str, service: &str) -> bool {
        self.set.contains(&(event.to_string(), service.to_string()))
    }
}

/// The longest a failed message waits before it comes back.
const MAX_RETURN_DELAY: Duration = Duration::from_secs(900);

#[derive(Debug)]
pub struct Debouncer {
    window: Duration,
    failure_backoff: Duration,
    pending: BTreeMap<String, Pending>,
    /// Sent out in an `Action::Redeploy`, waiting for `Input::Done`.
    flushing: BTreeMap<String, Vec<Held>>,
    messages: HashMap<String, Tracked>,
    handled: Handled,
}

impl Debouncer {
    pub fn new(window: Duration, failure_backoff: Duration) -> Self {
        Self {
            window,
            failure_backoff,
            pending: BTreeMap::new(),
            flushing: BTreeMap::new(),
            messages: HashMap::new(),
            handled: Handled::default(),
        }
    }

    /// When the next window closes.
    pub fn next_due(&self) -> Option<Instant> {
        self.pending.values().map(|p| p.due).min()
    }

    /// Messages held now (received, neither deleted nor returned).
    pub fn held(&self) -> usize {
        self.messages.len()
    }

    pub fn on(&mut self, input: Input, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        match input {
            Input::Received(batch) => {
                self.receive(batch, now, &mut actions);
                self.flush(now, &mut actions);
            }
            Input::Tick => self.flush(now, &mut actions),
            Input::Done(outcomes) => {
                for (service, outcome) in outcomes {
                    self.done(&service, outcome, now, &mut actions);
                }
                self.settle(&mut actions);
            }
            Input::Shutdown => {
                self.pending.clear();
                self.flushing.clear();
                let mut held: Vec<Receipt> = self.messages.drain().map(|(_, t)| t.receipt).collect();
                held.sort();
                actions.extend(held.into_iter().map(|receipt| Action::Release { receipt, after: Duration::ZERO }));
            }
        }
        actions
    }

    fn receive(&mut self, batch: Vec<Received>, now: Instant, actions: &mut Vec<Action>) {
        let mut delete = Vec::new();
        for r in batch {
            let change = match r.event.parsed {
                Parsed::Malformed(_) => {
                    actions.push(Action::Count("malformed"));
                    delete.push(r.receipt);
                    continue;
                }
                Parsed::Ignored(_) => {
                    actions.push(Action::Count("ignored"));
                    delete.push(r.receipt);
                    continue;
                }
                // Read by the rollout tracker before it gets here; nothing to redeploy.
                Parsed::Deployment(_) => {
                    actions.push(Action::Count("deployment"));
                    delete.push(r.receipt);
                    continue;
                }
                Parsed::Change(c) => c,
            };
            let event_id = r.event.id.unwrap_or_else(|| r.receipt.id.clone());
            let services: BTreeSet<String> =
                r.readers.iter().filter(|s| !self.handled.contains(&event_id, s)).cloned().collect();
            if services.is_empty() {
                actions.push(Action::Count(if r.readers.is_empty() { "unmatched" } else { "duplicate" }));
                delete.push(r.receipt);
                continue;
            }
            actions.push(Action::Count("matched"));
            let due = now + self.window;
            for s in &services {
                let p = self.pending.entry(s.clone()).or_insert_with(|| Pending { due, changes: Vec::new() });
                p.changes.push(Held {
                    change: change.clone(),
                    event_id: event_id.clone(),
                    message_id: r.receipt.id.clone(),
                });
            }
            let t = self.messages.entry(r.receipt.id.clone()).or_insert_with(|| Tracked {
                receipt: r.receipt.clone(),
                receive_count: r.receive_count,
                outstanding: BTreeSet::new(),
                failed: false,
            });
            // A redelivery carries a new receipt handle; only the newest one works.
            t.receipt = r.receipt;
            t.receive_count = r.receive_count;
            t.outstanding.extend(services);
        }
        if !delete.is_empty() {
            actions.push(Action::Delete(delete));
        }
    }

    fn flush(&mut self, now: Instant, actions: &mut Vec<Action>) {
        let due: Vec<String> = self
            .pending
            .iter()
            .filter(|(s, p)| p.due <= now && !self.flushing.contains_key(*s))
            .map(|(s, _)| s.clone())
            .collect();
        if due.is_empty() {
            return;
        }
        let mut dues = Vec::new();
        for service in due {
            let Some(p) = self.pending.remove(&service) else { continue };
            dues.push(Due { service: service.clone(), changes: p.changes.iter().map(|h| h.change.clone()).collect() });
            self.flushing.insert(service, p.changes);
        }
        actions.push(Action::Redeploy(dues));
    }

    fn done(&mut self, service: &str, outcome: Outcome, now: Instant, actions: &mut Vec<Action>) {
        let Some(held) = self.flushing.remove(service) else { return };
        let served_by = match outcome {
            Outcome::Unread { retry_in } => {
                let p = self
                    .pending
                    .entry(service.to_string())
                    .or_insert_with(|| Pending { due: now + retry_in, changes: Vec::new() });
                p.due = p.due.min(now + retry_in);
                let newer = std::mem::take(&mut p.changes);
                p.changes = held;
                p.changes.extend(newer);
                return;
            }
            Outcome::Failed => {
                for h in &held {
                    if let Some(t) = self.messages.get_mut(&h.message_id) {
                        t.failed = true;
                    }
                }
                return;
            }
            Outcome::Fresh { start } => {
                actions.push(Action::Count("fresh"));
                Some(start)
            }
            Outcome::Unsupported => {
                actions.push(Action::Count("unsupported_service"));
                None
            }
            Outcome::Queued => {
                actions.push(Action::Count("queued"));
                None
            }
            Outcome::Deployed | Outcome::Gone => None,
        };
        // A new deployment started after the changes were announced: an event
        // stamped T (whole seconds) was sent before T + 1, and its changes are no
        // later. One that started earlier answers only what came before its start.
        if let Some(announced) = held.iter().filter_map(|h| h.change.at).reduce(f64::max).map(|t| t + 1.0) {
            let through = served_by.map_or(announced, |start| start.min(announced));
            actions.push(Action::Answered { service: service.to_string(), through });
        }
        for h in held {
            if let Some(t) = self.messages.get_mut(&h.message_id) {
                t.outstanding.remove(service);
            }
            self.handled.insert((h.event_id, service.to_string()));
        }
    }

    /// Deletes what is fully done; returns failed messages no pending change still needs.
    fn settle(&mut self, actions: &mut Vec<Action>) {
        let still_needed: BTreeSet<&str> = self
            .pending
            .values()
            .flat_map(|p| &p.changes)
            .chain(self.flushing.values().flatten())
            .map(|h| h.message_id.as_str())
            .collect();
        let mut done: Vec<String> = Vec::new();
        let mut failed: Vec<String> = Vec::new();
        for (id, t) in &self.messages {
            if t.failed && !still_needed.contains(id.as_str()) {
                failed.push(id.clone());
            } else if !t.failed && t.outstanding.is_empty() {
                done.push(id.clone());
            }
        }
        done.sort();
        failed.sort();
        let delete: Vec<Receipt> = done.iter().filter_map(|id| self.messages.remove(id)).map(|t| t.receipt).collect();
        if !delete.is_empty() {
            actions.push(Action::Delete(delete));
        }
        for id in failed {
            if let Some(t) = self.messages.remove(&id) {
                let after = (self.failure_backoff * t.receive_count.max(1)).min(MAX_RETURN_DELAY);
                actions.push(Action::Release { receipt: t.receipt, after });
            }
        }
    }
}

#[cfg(test)]
#[path = "debounce_tests.rs"]
mod tests;
