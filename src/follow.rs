//! Following rollouts against AWS, for `run` and `apply --wait` alike: read
//! the due ones (DescribeServices by ten, judged by `rollout::judge`), and
//! diagnose a failed one from its stopped tasks (ListTasks by the
//! deployment id, DescribeTasks by 100) and the service's events.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use tracing::warn;

use crate::aws::Aws;
use crate::aws::observe::{describe_services_with_events, stopped_tasks};
use crate::model::Desired;
use crate::observed::Observed;
use crate::rollout::diagnose::{Diagnosis, Known, explain, first_reason};
use crate::rollout::judge::{Sighting, judge};
use crate::rollout::tracker::{Effect, Tracker};
use crate::rollout::{Ended, Progress, Started};

/// Wall-clock seconds since the epoch.
pub fn now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or_default()
}

/// What one read of the due rollouts found.
#[derive(Debug, Default)]
pub struct Read {
    pub effects: Vec<Effect>,
    /// Rollouts still in progress, with their task counts.
    pub progress: Vec<(String, Progress)>,
    /// The newest service events per service (for diagnoses).
    pub events: HashMap<String, Vec<(f64, String)>>,
}

/// Ends timed-out rollouts and reads the due ones.
pub async fn read_due(clients: &dyn crate::fleet::AwsFor, tracker: &mut Tracker) -> Read {
    let at = Instant::now();
    let mut read = Read { effects: tracker.expire(at, now()), ..Read::default() };
    let due = tracker.due(at);
    if due.is_empty() {
        return read;
    }
    // Read in each service's own account, by ten.
    for (aws, due) in crate::fleet::by_account(&due, |s| clients.aws_for(&s.service)) {
        read_account(aws, due, tracker, &mut read).await;
    }
    read
}

async fn read_account(aws: &Aws, due: Vec<&crate::rollout::Started>, tracker: &mut Tracker, read: &mut Read) {
    match describe_services_with_events(aws, due.iter().map(|s| (s.cluster.as_str(), s.service_name.as_str()))).await {
        Ok(observed) => {
            for s in &due {
                let svc = observed.get(&(s.cluster.clone(), s.service_name.clone()));
                if let Some(svc) = svc {
                    read.events.insert(s.service.clone(), svc.events.clone());
                }
                let sighting = judge(&s.deployment_id, svc);
                if let Sighting::InProgress(p) = &sighting {
                    read.progress.push((s.service.clone(), *p));
                }
                read.effects.extend(tracker.sighted(&s.service, &s.deployment_id, sighting, now()));
            }
        }
        Err(e) => warn!(error = %e, rollouts = due.len(), "Could not read rollouts; reading them again later"),
    }
}

/// Reads the failed deployment's stopped tasks and explains the first reason.
pub async fn diagnose(
    aws: &Aws,
    desired: &Desired,
    observed: Option<&Observed>,
    e: &Ended,
    events: &[(f64, String)],
) -> Option<Diagnosis> {
    let def = desired.services.get(&e.started.service)?;
    let tasks = stopped_tasks(aws, &def.cluster, &e.started.deployment_id).await.unwrap_or_else(|err| {
        warn!(service = %e.started.service, error = %err, "Could not read the stopped tasks of a failed rollout");
        Vec::new()
    });
    let reason = first_reason(&tasks, events, e.started.at).or_else(|| Some(e.reason.clone()))?;
    // The role as it is now, not as the last pass saw it: a grant removed since counts.
    let role = crate::aws::observe::role(aws, &def.execution_role.name).await.unwrap_or_else(|err| {
        warn!(role = %def.execution_role.name, error = %err, "Could not read the execution role of a failed rollout");
        None
    });
    Some(explain(&reason, &Known { service: def, observed, scope: &aws.scope, role_now: role.as_ref() }))
}

/// `apply --wait`: follows `started` until each ends or `timeout` passes,
/// showing progress on stderr (one live line on a terminal, plain lines
/// otherwise). Returns every end, failures diagnosed.
pub async fn wait(
    aws: &Aws,
    desired: &Desired,
    observed: Option<&Observed>,
    started: Vec<Started>,
    timeout: Duration,
) -> Vec<(Ended, Option<Diagnosis>)> {
    let mut tracker = Tracker::new(timeout, usize::MAX).first_poll(Duration::from_secs(2));
    for s in started {
        tracker.open(s, Instant::now(), now());
    }
    let tty = std::io::stderr().is_terminal();
    let mut shown: HashMap<String, Progress> = HashMap::new();
    let mut events: HashMap<String, Vec<(f64, String)>> = HashMap::new();
    let mut out = Vec::new();
    while let Some(at) = tracker.next_wake() {
        tokio::time::sleep_until(at.into()).await;
        let read = read_due(aws, &mut tracker).await;
        events.extend(read.events);
        for (service, p) in read.progress {
            if shown.get(&service) != Some(&p) {
                let line = format!("{service}: {} running / {} desired, {} failed", p.running, p.desired, p.failed);
                if tty {
                    eprint!("\r\x1b[2K{line}");
                } else {
                    eprintln!("{line}");
                }
                shown.insert(service, p);
            }
        }
        for effect in read.effects {
            if let Effect::Ended(e) = effect {
                let d = if e.outcome.failed() {
                    let ev = events.get(&e.started.service).map(Vec::as_slice).unwrap_or_default();
                    diagnose(aws, desired, observed, &e, ev).await
                } else {
                    None
                };
                if tty {
                    eprint!("\r\x1b[2K");
                }
                eprintln!("{}: rollout {} after {:.0} s", e.started.service, e.outcome.label(), e.duration());
                out.push((e, d));
            }
        }
    }
    out
}
