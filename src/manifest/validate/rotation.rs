//! `spec.rotation` of a Secret: the rotation function's ARN, the schedule in
//! the forms Secrets Manager documents (RotationRulesType.ScheduleExpression:
//! `rate(N hours|days)` or a six-field `cron(...)`, "as often as every four
//! hours"), and the window (`Duration`, `Nh`, which "must not extend into the
//! next rotation window or the next UTC day"). Checked before any AWS call.

use super::*;
use crate::model::{RotationDef, RotationRules};

/// The fewest hours between two rotations Secrets Manager allows.
const MIN_HOURS: u32 = 4;

/// When a schedule starts its windows, as far as the checks need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// `rate(N hours)`: windows start at midnight UTC and every N hours after.
    Hours(u32),
    /// `rate(N days)`.
    Days(u32),
    /// `cron(...)`: the hours of the day a window starts at.
    Cron { hours: Vec<u32> },
}

pub(super) fn rotation(cx: &mut Ctx, spec: Spanned<schema::RotationSpec>) -> Option<RotationDef> {
    let at = spec.referenced;
    let r = spec.value;
    if r.enabled.as_ref().is_some_and(|e| !e.value) {
        let extra = [
            r.lambda_arn.as_ref().map(|s| s.referenced),
            r.schedule.as_ref().map(|s| s.referenced),
            r.duration.as_ref().map(|s| s.referenced),
            r.rotate_immediately.as_ref().map(|s| s.referenced),
        ];
        if let Some(loc) = extra.into_iter().flatten().next() {
            cx.err(loc, "rotation with `enabled: false` takes no other field (it cancels rotation)");
            return None;
        }
        return Some(RotationDef::Disabled);
    }
    let mut ok = true;
    let lambda = match r.lambda_arn {
        Some(l) => {
            if let Err(m) = check_lambda_arn(&l.value) {
                cx.err(l.referenced, m);
                ok = false;
            }
            Some(l.value)
        }
        None => {
            cx.err(at, "rotation needs `lambdaArn` (the rotation function) and `schedule`");
            ok = false;
            None
        }
    };
    let schedule = match r.schedule {
        Some(s) => match parse_schedule(&s.value) {
            Ok(parsed) => Some((s, parsed)),
            Err(m) => {
                cx.err(s.referenced, m);
                ok = false;
                None
            }
        },
        None => {
            if lambda.is_some() {
                cx.err(at, "rotation needs `schedule`, e.g. `rate(30 days)` or `cron(0 4 ? * SUN *)`");
            }
            ok = false;
            None
        }
    };
    if let Some(d) = &r.duration {
        match parse_duration(&d.value) {
            Ok(hours) => {
                if let Some((_, s)) = &schedule
                    && let Err(m) = check_window(s, hours)
                {
                    cx.err(d.referenced, m);
                    ok = false;
                }
            }
            Err(m) => {
                cx.err(d.referenced, m);
                ok = false;
            }
        }
    }
    let (lambda_arn, (schedule, _)) = (lambda?, schedule?);
    ok.then(|| {
        RotationDef::Enabled(RotationRules {
            lambda_arn,
            schedule: schedule.value,
            duration: r.duration.map(|d| d.value),
            rotate_immediately: r.rotate_immediately.is_some_and(|b| b.value),
        })
    })
}

/// `arn:PARTITION:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]`.
pub fn check_lambda_arn(arn: &str) -> Result<(), String> {
    let parts: Vec<&str> = arn.split(':').collect();
    let name_ok =
        |n: &str| !n.is_empty() && n.len() <= 64 && n.chars().all(|c| c.is_ascii_alphanumeric() || "-_".contains(c));
    let well_formed = (7..=8).contains(&parts.len())
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == "lambda"
        && !parts[3].is_empty()
        && parts[4].len() == 12
        && parts[4].chars().all(|c| c.is_ascii_digit())
        && parts[5] == "function"
        && name_ok(parts[6])
        && parts.get(7).is_none_or(|q| name_ok(q));
    if well_formed {
        Ok(())
    } else {
        Err(format!("`{arn}` is not a Lambda function ARN (arn:aws:lambda:REGION:ACCOUNT:function:NAME)"))
    }
}

/// A rotation window: `Nh`, 1 to 24 hours.
pub fn parse_duration(d: &str) -> Result<u32, String> {
    let hours = d.strip_suffix('h').and_then(|n| n.parse::<u32>().ok());
    match hours {
        Some(h) if (1..=24).contains(&h) => Ok(h),
        _ => Err(format!("duration `{d}` must be a number of hours from 1h to 24h, e.g. `3h`")),
    }
}

pub fn parse_schedule(expr: &str) -> Result<Schedule, String> {
    if let Some(inner) = expr.strip_prefix("rate(").and_then(|s| s.strip_suffix(')')) {
        return parse_rate(inner).map_err(|m| format!("schedule `{expr}`: {m}"));
    }
    if let Some(inner) = expr.strip_prefix("cron(").and_then(|s| s.strip_suffix(')')) {
        return parse_cron(inner).map_err(|m| format!("schedule `{expr}`: {m}"));
    }
    Err(format!("schedule `{expr}` must be `rate(N hours)`, `rate(N days)` or `cron(MIN HOUR DOM MONTH DOW YEAR)`"))
}

fn parse_rate(inner: &str) -> Result<Schedule, String> {
    let mut words = inner.split(' ');
    let (Some(n), Some(unit), None) = (words.next(), words.next(), words.next()) else {
        return Err("a rate is `rate(N hours)` or `rate(N days)`".into());
    };
    let n: u32 = n.parse().map_err(|_| format!("`{n}` is not a whole number"))?;
    let (hours, plural) = match unit {
        "hour" => (true, false),
        "hours" => (true, true),
        "day" => (false, false),
        "days" => (false, true),
        other => return Err(format!("unit `{other}` must be hours or days")),
    };
    if (n == 1) == plural {
        return Err(format!(
            "write `{n} {}`",
            if n == 1 { unit.trim_end_matches('s').to_string() } else { format!("{unit}s") }
        ));
    }
    if hours {
        if n < MIN_HOURS {
            return Err(format!("Secrets Manager rotates at most every {MIN_HOURS} hours"));
        }
        Ok(Schedule::Hours(n))
    } else {
        if !(1..=1000).contains(&n) {
            return Err("a rate in days must be from 1 to 1000".into());
        }
        Ok(Schedule::Days(n))
    }
}

fn parse_cron(inner: &str) -> Result<Schedule, String> {
    let fields: Vec<&str> = inner.split_whitespace().collect();
    let [minutes, hours, dom, month, dow, year] = fields[..] else {
        return Err(format!(
            "a cron has six fields (minutes hours day-of-month month day-of-week year), not {}",
            fields.len()
        ));
    };
    if minutes.parse::<u32>().map_or(true, |m| m > 59) {
        return Err(format!(
            "minutes `{minutes}` must be one minute (0-59): more than one a hour is more often than every {MIN_HOURS} hours"
        ));
    }
    let hours = hour_set(hours)?;
    let mut gaps: Vec<u32> = hours.windows(2).map(|w| w[1] - w[0]).collect();
    if let (Some(first), Some(last)) = (hours.first(), hours.last())
        && hours.len() > 1
    {
        gaps.push(24 - last + first);
    }
    if gaps.iter().any(|g| *g < MIN_HOURS) {
        return Err(format!("hours `{}` rotate more often than every {MIN_HOURS} hours", fields[1]));
    }
    if (dom == "?") == (dow == "?") {
        return Err("exactly one of day-of-month and day-of-week must be `?`".into());
    }
    let allowed = |f: &str| f.chars().all(|c| c.is_ascii_alphanumeric() || ",-*/?#L".contains(c));
    if let Some(bad) = [dom, month, dow, year].into_iter().find(|f| !allowed(f)) {
        return Err(format!("field `{bad}` has a character cron does not take"));
    }
    Ok(Schedule::Cron { hours })
}

/// The hours (0-23) a cron hours field names: `N`, `A-B`, `A/S`, `*/S`, lists.
fn hour_set(field: &str) -> Result<Vec<u32>, String> {
    let bad = || format!("hours `{field}` must be hours 0-23 (`4`, `2,14`, `0/6`, `1-13/12`); `*` is every hour");
    let hour = |s: &str| s.parse::<u32>().ok().filter(|h| *h < 24).ok_or_else(bad);
    let mut set = std::collections::BTreeSet::new();
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, s.parse::<u32>().ok().filter(|s| *s > 0).ok_or_else(bad)?),
            None => (part, 0),
        };
        let (from, to) = match (range, range.split_once('-')) {
            ("*", _) if step > 0 => (0, 23),
            ("*", _) => {
                return Err(format!(
                    "hours `*` rotate every hour; Secrets Manager rotates at most every {MIN_HOURS} hours"
                ));
            }
            (_, Some((a, b))) => (hour(a)?, hour(b)?),
            (h, None) => {
                let h = hour(h)?;
                (h, if step > 0 { 23 } else { h })
            }
        };
        if from > to {
            return Err(bad());
        }
        set.extend((from..=to).step_by(step.max(1) as usize));
    }
    Ok(set.into_iter().collect())
}

/// A window must end before the next one starts and before the UTC day ends.
pub fn check_window(schedule: &Schedule, hours: u32) -> Result<(), String> {
    let limit = match schedule {
        Schedule::Hours(n) if *n < 24 => (*n).min(24 - (23 / n) * n),
        Schedule::Hours(_) | Schedule::Days(_) => 24,
        Schedule::Cron { hours: starts } => {
            let last = starts.last().copied().unwrap_or(0);
            let gap = starts.windows(2).map(|w| w[1] - w[0]).min().unwrap_or(24);
            gap.min(24 - last)
        }
    };
    if hours > limit {
        return Err(format!(
            "a {hours}h window would run into the next rotation window or the next UTC day (at most {limit}h here)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_in_the_documented_forms_parse() {
        assert_eq!(parse_schedule("rate(30 days)"), Ok(Schedule::Days(30)));
        assert_eq!(parse_schedule("rate(1 day)"), Ok(Schedule::Days(1)));
        assert_eq!(parse_schedule("rate(12 hours)"), Ok(Schedule::Hours(12)));
        assert_eq!(parse_schedule("cron(0 16 1,15 * ? *)"), Ok(Schedule::Cron { hours: vec![16] }));
        assert_eq!(parse_schedule("cron(0 8/4 ? * MON-FRI *)"), Ok(Schedule::Cron { hours: vec![8, 12, 16, 20] }));
        assert_eq!(parse_schedule("cron(30 0/6 * * ? *)"), Ok(Schedule::Cron { hours: vec![0, 6, 12, 18] }));
    }

    #[test]
    fn schedules_aws_refuses_are_located_errors_with_the_reason() {
        let err = |s: &str| parse_schedule(s).unwrap_err();
        assert!(err("rate(2 hours)").contains("every 4 hours"), "{}", err("rate(2 hours)"));
        assert!(err("rate(1 days)").contains("write `1 day`"));
        assert!(err("rate(30 minutes)").contains("hours or days"));
        assert!(err("rate(0 days)").contains("1 to 1000"));
        assert!(err("cron(0 * * * ? *)").contains("every hour"));
        assert!(err("cron(0 0/2 * * ? *)").contains("more often than every 4 hours"));
        assert!(err("cron(0 22,1 * * ? *)").contains("more often"), "wraps past midnight");
        assert!(err("cron(0/15 4 * * ? *)").contains("one minute"));
        assert!(err("cron(0 4 * * *)").contains("six fields"));
        assert!(err("cron(0 4 * * * *)").contains("`?`"));
        assert!(err("every month").contains("must be"));
    }

    #[test]
    fn windows_stay_inside_their_day_and_before_the_next_window() {
        assert!(parse_duration("3h").is_ok_and(|h| h == 3));
        for bad in ["0h", "25h", "3", "3 h", "180m"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert!(check_window(&Schedule::Days(30), 24).is_ok());
        assert!(check_window(&Schedule::Hours(6), 6).is_ok());
        assert!(check_window(&Schedule::Hours(6), 7).is_err());
        // rate(5 hours) starts at 0, 5, 10, 15, 20: the last window has 4 hours of day left.
        assert!(check_window(&Schedule::Hours(5), 4).is_ok());
        assert!(check_window(&Schedule::Hours(5), 5).is_err());
        assert!(check_window(&Schedule::Cron { hours: vec![22] }, 2).is_ok());
        assert!(check_window(&Schedule::Cron { hours: vec![22] }, 3).is_err());
        assert!(check_window(&Schedule::Cron { hours: vec![2, 14] }, 10).is_ok());
        assert!(check_window(&Schedule::Cron { hours: vec![2, 14] }, 11).is_err());
    }

    #[test]
    fn lambda_arns_are_function_arns() {
        assert!(check_lambda_arn("arn:aws:lambda:us-east-1:123456789012:function:rotate-db").is_ok());
        assert!(check_lambda_arn("arn:aws:lambda:us-east-1:123456789012:function:rotate-db:live").is_ok());
        assert!(check_lambda_arn("arn:aws:lambda:us-east-1:123456789012:layer:x").is_err());
        assert!(check_lambda_arn("rotate-db").is_err());
    }
}
