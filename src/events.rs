//! Rotation events: parse the EventBridge forms that mean "the value a new
//! task would read has changed", and map a changed value to the services that
//! read it unpinned. Pure: no I/O, so every form is unit tested with
//! real-shaped samples.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::arn::{RawTarget, Scope};
pub use crate::model::ChangedValue;
use crate::model::{AWSCURRENT, Desired, Pin, ValueRef};

#[derive(Debug, Clone, PartialEq)]
pub struct ValueChange {
    pub value: ChangedValue,
    /// When it changed (event `time`), seconds since the epoch.
    pub at: Option<f64>,
    /// Which event form said so, for logs and status.
    pub cause: String,
    /// Secrets: the staging labels that now point at another version (a reader
    /// pinned to one of them reads something new). Parameters: empty.
    pub labels: BTreeSet<String>,
}

/// AWSCURRENT moved: so did AWSPREVIOUS, which Secrets Manager moves to the
/// version AWSCURRENT left (UpdateSecretVersionStage and rotation references).
fn current_moved() -> BTreeSet<String> {
    [AWSCURRENT, "AWSPREVIOUS"].into_iter().map(str::to_string).collect()
}

/// A rotation's in-progress label: no task reads it.
const AWSPENDING: &str = "AWSPENDING";

/// An "ECS Deployment State Change" event (ECS developer guide, "Amazon ECS
/// service deployment state change events"): `detail.eventName`
/// SERVICE_DEPLOYMENT_IN_PROGRESS / _COMPLETED / _FAILED for
/// `detail.deploymentId`, the service ARN in `resources`. A rollback is an
/// IN_PROGRESS event for a NEW deployment whose reason starts "ECS deployment
/// circuit breaker: rolling back to deploymentId".
#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentEvent {
    pub service_arn: String,
    pub deployment_id: String,
    pub state: DeploymentState,
    pub reason: String,
    /// `detail.updatedAt`, else the event's `time`.
    pub at: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeploymentState {
    InProgress,
    Completed,
    Failed,
}

/// The prefix of ECS's reason on a rollback deployment.
pub const ROLLBACK_REASON: &str = "ECS deployment circuit breaker: rolling back";

impl DeploymentEvent {
    pub fn is_rollback(&self) -> bool {
        self.state == DeploymentState::InProgress && self.reason.starts_with(ROLLBACK_REASON)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    Change(ValueChange),
    /// ECS says where a deployment stands (rollouts follow these).
    Deployment(DeploymentEvent),
    /// A well-formed event that does not change what a new task reads.
    Ignored(String),
    /// Not an event we can read at all.
    Malformed(String),
}

/// Largest message body read; EventBridge events are at most 256 KiB.
pub const MAX_BODY: usize = 256 * 1024;

/// One SQS message body, read once: the event's id and time, and what it means.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The EventBridge event id (the same across redeliveries), if it has one.
    pub id: Option<String>,
    /// The event's `time`, seconds since the epoch.
    pub time: Option<f64>,
    pub parsed: Parsed,
}

/// Reads one SQS message body (an EventBridge event) of the controller's own
/// account and region.
pub fn read(body: &str, scope: &Scope) -> Event {
    read_from(body, std::slice::from_ref(scope))
}

/// Reads one SQS message body from any of `scopes` (the controller's own
/// first, then its Targets'). A change in another account names its value
/// by ARN, so that it matches only the readers of that account's value:
/// a parameter by `arn:…:parameter/NAME`, a secret given by name by
/// `arn:…:secret:NAME` (matched as a partial ARN).
pub fn read_from(body: &str, scopes: &[Scope]) -> Event {
    let event = read_home(body, scopes);
    let Event { id, time, parsed } = event;
    let Parsed::Ignored(_) = &parsed else { return Event { id, time, parsed } };
    let ev: Value = serde_json::from_str(body).unwrap_or_default();
    let (acct, region) = (ev["account"].as_str().unwrap_or_default(), ev["region"].as_str().unwrap_or_default());
    let Some(scope) = scopes.iter().skip(1).find(|s| s.account == acct && s.region == region) else {
        return Event { id, time, parsed };
    };
    let parsed = match meaning(&ev, scope) {
        Parsed::Change(mut c) => {
            c.value = match c.value {
                ChangedValue::Parameter(n) if !n.starts_with("arn:") => {
                    ChangedValue::Parameter(scope.parameter_arn(&n))
                }
                ChangedValue::Secret(id) if !id.starts_with("arn:") => ChangedValue::Secret(format!(
                    "arn:{}:secretsmanager:{}:{}:secret:{id}",
                    scope.partition, scope.region, scope.account
                )),
                v => v,
            };
            Parsed::Change(c)
        }
        other => other,
    };
    Event { id, time, parsed }
}

fn read_home(body: &str, scopes: &[Scope]) -> Event {
    let scope = &scopes[0];
    let malformed = |why: String| Event { id: None, time: None, parsed: Parsed::Malformed(why) };
    if body.len() > MAX_BODY {
        return malformed(format!("body of {} bytes is larger than an EventBridge event can be", body.len()));
    }
    let ev: Value = match serde_json::from_str(body) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => return malformed("not a JSON object".into()),
        Err(e) => return malformed(format!("not JSON: {e}")),
    };
    Event {
        id: ev["id"].as_str().map(str::to_string),
        time: ev["time"].as_str().and_then(parse_rfc3339),
        parsed: meaning(&ev, scope),
    }
}

/// What one SQS message body means.
pub fn parse(body: &str, scope: &Scope) -> Parsed {
    read(body, scope).parsed
}

fn meaning(ev: &Value, scope: &Scope) -> Parsed {
    let s = |v: &Value| v.as_str().map(str::to_string);
    let (Some(source), Some(detail_type)) = (s(&ev["source"]), s(&ev["detail-type"])) else {
        return Parsed::Malformed("no source or detail-type".into());
    };
    // Events for another account or region are not ours to act on.
    if let Some(acct) = ev["account"].as_str()
        && acct != scope.account
    {
        return Parsed::Ignored(format!("event for account {acct}"));
    }
    if let Some(region) = ev["region"].as_str()
        && region != scope.region
    {
        return Parsed::Ignored(format!("event for region {region}"));
    }
    let at = ev["time"].as_str().and_then(parse_rfc3339);
    let d = &ev["detail"];
    if !d.is_object() {
        return Parsed::Malformed("detail is not an object".into());
    }
    let secret = |id: &str, cause: &str, labels: BTreeSet<String>| {
        Parsed::Change(ValueChange { value: ChangedValue::Secret(id.into()), at, cause: cause.to_string(), labels })
    };
    match (source.as_str(), detail_type.as_str()) {
        ("aws.secretsmanager", "Secret Label Updated") => {
            let label = d["labelUpdated"].as_str().unwrap_or_default();
            if label.is_empty() || label == AWSPENDING {
                return Parsed::Ignored(format!("label {} moved", if label.is_empty() { "?" } else { label }));
            }
            let labels = if label == AWSCURRENT { current_moved() } else { [label.to_string()].into() };
            let id = ev["resources"].as_array().and_then(|r| r.first()).and_then(Value::as_str).or(d["name"].as_str());
            match id {
                Some(id) => secret(id, "Secret Label Updated", labels),
                None => Parsed::Malformed("Secret Label Updated without a secret".into()),
            }
        }
        ("aws.secretsmanager", "AWS Service Event via CloudTrail") => {
            let name = d["eventName"].as_str().unwrap_or_default();
            if name != "RotationSucceeded" {
                return Parsed::Ignored(format!("service event {name}"));
            }
            match d["additionalEventData"]["SecretId"].as_str() {
                Some(id) => secret(id, "RotationSucceeded", current_moved()),
                None => Parsed::Malformed("RotationSucceeded without additionalEventData.SecretId".into()),
            }
        }
        ("aws.secretsmanager", "AWS API Call via CloudTrail") => {
            let name = d["eventName"].as_str().unwrap_or_default();
            if d["errorCode"].is_string() {
                return Parsed::Ignored(format!("{name} failed"));
            }
            let req = &d["requestParameters"];
            let resp = &d["responseElements"];
            let mut labels: BTreeSet<String> = match name {
                // The stages the new version gets (AWSCURRENT when none are given).
                "PutSecretValue" => match req["versionStages"].as_array() {
                    Some(stages) => stages.iter().filter_map(Value::as_str).map(str::to_string).collect(),
                    None => [AWSCURRENT.to_string()].into(),
                },
                // UpdateSecret makes a new AWSCURRENT version only when it carries a value.
                "UpdateSecret" if resp["versionId"].is_string() => [AWSCURRENT.to_string()].into(),
                "UpdateSecret" => BTreeSet::new(),
                // A label moved to another version (only removing it moves nothing a task could read).
                "UpdateSecretVersionStage" if req["moveToVersionId"].is_string() => {
                    req["versionStage"].as_str().map(|l| [l.to_string()].into()).unwrap_or_default()
                }
                "UpdateSecretVersionStage" => BTreeSet::new(),
                other => return Parsed::Ignored(format!("API call {other}")),
            };
            // A rotation's first step writes AWSPENDING: not what tasks read.
            labels.remove(AWSPENDING);
            if labels.remove(AWSCURRENT) {
                labels.extend(current_moved());
            }
            if labels.is_empty() {
                return Parsed::Ignored(format!("{name} moved no label a task reads"));
            }
            // `arn` since February 2024, `aRN` before; requestParameters.secretId is a name or ARN.
            let id = resp["arn"].as_str().or(resp["aRN"].as_str()).or(req["secretId"].as_str());
            match id {
                Some(id) => secret(id, name, labels),
                None => Parsed::Malformed(format!("{name} without a secret id")),
            }
        }
        ("aws.ssm", "Parameter Store Change") => {
            let op = d["operation"].as_str().unwrap_or_default();
            // An event for a call that failed changes nothing.
            if !d["exception"].is_null() && d["exception"] != "" {
                return Parsed::Ignored(format!("parameter operation {op} failed"));
            }
            // A label selects a version only for a reader that names it; secretwire's
            // parameter references name none (they read the latest version).
            if !matches!(op, "Create" | "Update") {
                return Parsed::Ignored(format!("parameter operation {op}"));
            }
            match d["name"].as_str() {
                Some(n) if !n.is_empty() => Parsed::Change(ValueChange {
                    value: ChangedValue::Parameter(n.into()),
                    at,
                    cause: format!("Parameter Store {op}"),
                    labels: BTreeSet::new(),
                }),
                _ => Parsed::Malformed("Parameter Store Change without detail.name".into()),
            }
        }
        ("aws.ecs", "ECS Deployment State Change") => {
            let state = match d["eventName"].as_str().unwrap_or_default() {
                "SERVICE_DEPLOYMENT_IN_PROGRESS" => DeploymentState::InProgress,
                "SERVICE_DEPLOYMENT_COMPLETED" => DeploymentState::Completed,
                "SERVICE_DEPLOYMENT_FAILED" => DeploymentState::Failed,
                other => return Parsed::Ignored(format!("deployment event {other}")),
            };
            let service = ev["resources"].as_array().and_then(|r| r.first()).and_then(Value::as_str);
            match (service, d["deploymentId"].as_str()) {
                (Some(service), Some(id)) => Parsed::Deployment(DeploymentEvent {
                    service_arn: service.to_string(),
                    deployment_id: id.to_string(),
                    state,
                    reason: d["reason"].as_str().unwrap_or_default().to_string(),
                    at: d["updatedAt"].as_str().and_then(parse_rfc3339).or(at),
                }),
                _ => Parsed::Malformed("ECS Deployment State Change without a service or deployment id".into()),
            }
        }
        (src, dt) => Parsed::Ignored(format!("{src} {dt}")),
    }
}

/// Which services read which value, by the label they follow (versionId
/// pins are left out: a rotation never changes what they read), with
/// `redeployOnChange`.
#[derive(Debug, Clone, Default)]
pub struct ValueIndex {
    /// Secret name or ARN -> label -> services.
    secrets: BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
    parameters: BTreeMap<String, BTreeSet<String>>,
}

impl ValueIndex {
    /// `secret_arns` maps secret names (and ARNs given as ids) to their full ARN, where known.
    pub fn build(desired: &Desired, secret_arns: &BTreeMap<String, String>) -> Self {
        Self::build_in(desired, secret_arns, &BTreeMap::new())
    }

    /// [`ValueIndex::build`] across Targets (`scopes`: each Target's account
    /// and region): a parameter in a Target is indexed by its ARN, the form
    /// [`read_from`] gives a change there; one in the controller's own
    /// account by its name, as before.
    pub fn build_in(
        desired: &Desired,
        secret_arns: &BTreeMap<String, String>,
        scopes: &BTreeMap<String, Scope>,
    ) -> Self {
        let mut ix = Self::default();
        for svc in desired.services.values().filter(|s| s.redeploy_on_change) {
            for r in svc.value_refs() {
                let Pin::Label(label) = r.pin() else { continue };
                let mut add_secret = |id: &str| {
                    for key in std::iter::once(id).chain(secret_arns.get(id).map(String::as_str)) {
                        let by_label = ix.secrets.entry(key.to_string()).or_default();
                        by_label.entry(label.clone()).or_default().insert(svc.name.clone());
                    }
                };
                match r {
                    ValueRef::Secret { id, .. } => add_secret(id),
                    ValueRef::Raw { target: RawTarget::Secret(s), .. } => add_secret(&s.secret_arn),
                    ValueRef::Parameter { name } => {
                        let key = crate::model::ObjectKey::new(crate::model::Kind::Parameter, name.as_str());
                        let owner = match desired.parameters.get(name) {
                            Some(p) => p.target.as_deref(),
                            None if desired.invalid.contains(&key) => None,
                            None => svc.target.as_deref(),
                        };
                        let key = match owner.and_then(|t| scopes.get(t)) {
                            Some(s) => s.parameter_arn(name),
                            None => name.clone(),
                        };
                        ix.parameters.entry(key).or_default().insert(svc.name.clone());
                    }
                    ValueRef::Raw { target: RawTarget::Parameter { name, arn }, .. } => {
                        let foreign = crate::arn::Arn::parse(arn)
                            .is_some_and(|a| scopes.values().any(|s| s.account == a.account && s.region == a.region));
                        let key = if foreign { arn.clone() } else { name.clone() };
                        ix.parameters.entry(key).or_default().insert(svc.name.clone());
                    }
                }
            }
        }
        ix
    }

    /// The services that must be redeployed for this change: a parameter's
    /// readers, or a secret's readers that follow a label that moved.
    pub fn services_for(&self, change: &ValueChange) -> BTreeSet<String> {
        match &change.value {
            ChangedValue::Parameter(name) => {
                let alt = if name.starts_with('/') || !name.contains('/') { name.clone() } else { format!("/{name}") };
                self.parameters.get(name).or_else(|| self.parameters.get(&alt)).cloned().unwrap_or_default()
            }
            ChangedValue::Secret(id) => self
                .secret_readers(id)
                .map(|by_label| {
                    by_label.iter().filter(|(l, _)| change.labels.contains(*l)).flat_map(|(_, s)| s.clone()).collect()
                })
                .unwrap_or_default(),
        }
    }

    fn secret_readers(&self, id: &str) -> Option<&BTreeMap<String, BTreeSet<String>>> {
        if let Some(s) = self.secrets.get(id) {
            return Some(s);
        }
        // An ARN we do not know: try the name it carries, with and without
        // the 6-character suffix (a name may itself end like a suffix).
        let (_, resource) = id.split_once(":secret:")?;
        let name = resource.split(':').next().unwrap_or(resource);
        if let Some(s) = self.secrets.get(name) {
            return Some(s);
        }
        match name.rsplit_once('-') {
            Some((base, sfx)) if sfx.len() == 6 && sfx.bytes().all(|b| b.is_ascii_alphanumeric()) => {
                self.secrets.get(base)
            }
            _ => None,
        }
    }
}

/// Whether a deployment that started at `start` (ECS reports milliseconds)
/// came after a change at `changed`. A whole-second time (an event's `time`,
/// moto's Secrets Manager dates) stands for any instant of its second, so
/// only a start a full second later is surely after it; a time with a
/// fraction is taken as it is.
pub fn started_after(start: f64, changed: f64) -> bool {
    if changed.fract() == 0.0 { start >= changed + 1.0 } else { start > changed }
}

/// Whether a deployment that started at `start` serves the change an event
/// stamped `at` announced. When the start falls within the event's second,
/// `last_change` (the value's last-change time as AWS reports it now, if it
/// was read) decides: a precise time inside that second is the announced
/// change or a later one, and the deployment serves it if it started after.
/// A last-change time outside that second tells nothing about this event.
pub fn serves_event(start: f64, at: f64, last_change: Option<f64>) -> bool {
    started_after(start, at)
        || last_change.is_some_and(|l| l.fract() != 0.0 && at <= l && l < at + 1.0 && started_after(start, l))
}

/// Whether `serves_event` needs the value's last-change time: the deployment
/// started within the event's (whole) second. Before it, it surely did not serve.
pub fn needs_last_change(start: f64, at: f64) -> bool {
    !started_after(start, at) && at.fract() == 0.0 && start >= at
}

/// `2024-02-06T16:43:48Z` or with fractional seconds / offset, to epoch seconds.
pub fn parse_rfc3339(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d, h, mi, se) = (num(0..4)?, num(5..7)?, num(8..10)?, num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut frac = 0.0;
    if let Some(r) = rest.strip_prefix('.') {
        let digits: String = r.chars().take_while(char::is_ascii_digit).collect();
        frac = format!("0.{digits}").parse().ok()?;
        rest = &r[digits.len()..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        o if o.len() == 6 && (o.starts_with('+') || o.starts_with('-')) => {
            let sign = if o.starts_with('-') { -1 } else { 1 };
            sign * (o[1..3].parse::<i64>().ok()? * 3600 + o[4..6].parse::<i64>().ok()? * 60)
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo, d);
    Some((days * 86400 + h * 3600 + mi * 60 + se - offset) as f64 + frac)
}

/// Days since 1970-01-01 (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// Epoch seconds to `YYYY-MM-DDTHH:MM:SSZ`.
pub fn format_rfc3339(t: f64) -> String {
    let secs = t.floor() as i64;
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    let z = days + 719468;
    let era = if z >= 0 { z } else { z - 146096 } / 146097;
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
#[path = "events_tests.rs"]
mod tests;
