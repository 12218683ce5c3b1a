//! A Secret's rotation: the declared configuration compared with what
//! DescribeSecret/ListSecrets report, so a second apply writes nothing.
//! AWS reports `AutomaticallyAfterDays` computed next to a schedule
//! expression, and only it for a schedule set in days the old way; a
//! `rate(N days)` manifest matches either. A window the manifest leaves out
//! is AWS's default and is not compared.

use super::*;

/// What the rotation of an existing secret needs: a detail for the plan and the op.
pub(super) fn change(want: &RotationDef, have: &ObservedRotation, id: &str) -> Option<(String, Op)> {
    match want {
        RotationDef::Disabled if have.enabled => {
            Some(("rotation: cancel".into(), Op::CancelRotation { id: id.to_string() }))
        }
        RotationDef::Disabled => None,
        RotationDef::Enabled(rules) if matches(rules, have) => None,
        RotationDef::Enabled(rules) => {
            let now = if have.enabled { format!(" (now {})", describe_observed(have)) } else { String::new() };
            Some((
                format!("rotation: {}{now}", describe(rules)),
                Op::RotateSecret { id: id.to_string(), rules: rules.clone() },
            ))
        }
    }
}

/// The op that configures rotation on a secret created in the same pass.
pub(super) fn on_create(want: &RotationDef, name: &str) -> Option<(String, Op)> {
    match want {
        RotationDef::Enabled(rules) => Some((
            format!("rotation: {}", describe(rules)),
            Op::RotateSecret { id: name.to_string(), rules: rules.clone() },
        )),
        RotationDef::Disabled => None,
    }
}

fn matches(want: &RotationRules, have: &ObservedRotation) -> bool {
    let schedule = match &have.schedule {
        Some(s) => *s == want.schedule,
        None => have.after_days.is_some_and(|n| days_of(&want.schedule) == Some(n)),
    };
    have.enabled
        && have.lambda_arn.as_deref() == Some(want.lambda_arn.as_str())
        && schedule
        && want.duration.as_ref().is_none_or(|d| have.duration.as_ref() == Some(d))
}

/// N for `rate(N days)` / `rate(1 day)`.
fn days_of(schedule: &str) -> Option<i64> {
    let inner = schedule.strip_prefix("rate(")?.strip_suffix(')')?;
    let (n, unit) = inner.split_once(' ')?;
    matches!(unit, "day" | "days").then(|| n.parse().ok()).flatten()
}

fn function_name(arn: &str) -> &str {
    arn.split(':').nth(6).unwrap_or(arn)
}

fn describe(r: &RotationRules) -> String {
    let window = r.duration.as_ref().map(|d| format!(", window {d}")).unwrap_or_default();
    let now = if r.rotate_immediately { ", rotate now" } else { "" };
    format!("{}{window} by {}{now}", r.schedule, function_name(&r.lambda_arn))
}

fn describe_observed(h: &ObservedRotation) -> String {
    let schedule = h.schedule.clone().or_else(|| h.after_days.map(|n| format!("every {n} days"))).unwrap_or_default();
    let window = h.duration.as_ref().map(|d| format!(", window {d}")).unwrap_or_default();
    format!("{schedule}{window} by {}", h.lambda_arn.as_deref().map(function_name).unwrap_or("?"))
}
