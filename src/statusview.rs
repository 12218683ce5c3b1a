//! `secretwire status`: a running controller's `/status` as a table, the way
//! `kubectl get` shows objects (OBJECT, READY, SYNCED, REVISION, LAST
//! REDEPLOY, AGE; `wide` adds the Ready reason, the last rollout and the
//! message). Pure: the JSON in, the text out.

use std::fmt::Write;

use serde_json::Value;

use crate::events::parse_rfc3339;

/// The table of `/status` at `now` (seconds since the epoch).
pub fn table(status: &Value, now: f64, wide: bool) -> String {
    let mut rows = vec![{
        let mut h = vec!["OBJECT", "READY", "SYNCED", "REVISION", "LAST REDEPLOY", "AGE"];
        if wide {
            h.extend(["REASON", "ROLLOUT", "MESSAGE"]);
        }
        h.into_iter().map(str::to_string).collect::<Vec<_>>()
    }];
    for o in status["objects"].as_object().into_iter().flat_map(|m| m.values()) {
        let cond = |t: &str| o["conditions"].as_array().into_iter().flatten().find(|c| c["type"] == t);
        let status_of = |t: &str| cond(t).and_then(|c| c["status"].as_str()).unwrap_or("Unknown").to_string();
        let redeploy = match o["lastRedeploy"]["at"].as_str().and_then(parse_rfc3339) {
            Some(at) => format!("{} ago", age(now - at)),
            None => "-".into(),
        };
        let mut row = vec![
            format!("{}/{}", o["kind"].as_str().unwrap_or("?"), o["name"].as_str().unwrap_or("?")),
            status_of("Ready"),
            status_of("Synced"),
            o["lastAppliedRevision"].as_str().unwrap_or("-").to_string(),
            redeploy,
            o["firstSeen"].as_str().and_then(parse_rfc3339).map_or("-".into(), |t| age(now - t)),
        ];
        if wide {
            let ready = cond("Ready");
            row.push(ready.and_then(|c| c["reason"].as_str()).unwrap_or("-").to_string());
            row.push(match &o["lastRollout"] {
                Value::Null => "-".into(),
                r => format!(
                    "{} {}",
                    r["deploymentId"].as_str().unwrap_or("?"),
                    r["outcome"].as_str().unwrap_or("in progress")
                ),
            });
            let msg = ready.and_then(|c| c["message"].as_str()).filter(|m| !m.is_empty()).unwrap_or("-");
            row.push(msg.to_string());
        }
        rows.push(row);
    }
    let widths: Vec<usize> =
        (0..rows[0].len()).map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for r in &rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| if i + 1 == r.len() { c.clone() } else { format!("{c:<w$}", w = widths[i]) })
            .collect();
        let _ = writeln!(out, "{}", line.join("   ").trim_end());
    }
    out
}

/// What the table does not show: leadership, readiness, the last pass, manifest errors, Targets.
pub fn notes(status: &Value, now: f64) -> Vec<String> {
    let mut out = Vec::new();
    let role = if status["leader"] == true { "leader" } else { "standby" };
    let ready = if status["ready"] == true { "ready" } else { "not ready (first reconcile not finished)" };
    let last = status["lastReconcile"]
        .as_str()
        .and_then(parse_rfc3339)
        .map_or("never".into(), |t| format!("{} ago", age(now - t)));
    out.push(format!("controller: {role}, {ready}, last reconcile {last}"));
    for e in status["manifestErrors"].as_array().into_iter().flatten().filter_map(Value::as_str) {
        out.push(format!("manifest error: {e}"));
    }
    for (name, t) in status["targets"].as_object().into_iter().flatten() {
        if t["connected"] != true {
            out.push(format!("Target {name} not connected: {}", t["error"].as_str().unwrap_or("unknown")));
        }
    }
    out
}

/// A duration the way `kubectl` prints ages: `45s`, `3m12s`, `25m`, `5h4m`, `3d`.
pub fn age(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    let (m, h, d) = (s / 60, s / 3600, s / 86400);
    match s {
        0..120 => format!("{s}s"),
        120..600 => format!("{m}m{}s", s % 60),
        600..10800 => format!("{m}m"),
        10800..28800 => format!("{h}h{}m", m % 60),
        28800..172800 => format!("{h}h"),
        172800..691200 => format!("{d}d{}h", h % 24),
        _ => format!("{d}d"),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::events::format_rfc3339;

    #[test]
    fn status_as_a_table_with_ages_and_wide_columns() {
        let now = 1_800_000_000.0;
        let at = |ago: f64| format_rfc3339(now - ago);
        let cond = |t: &str, s: &str, r: &str| json!({"type": t, "status": s, "reason": r, "message": if s == "False" { "ecs service prod/web: not found" } else { "" }});
        let status = json!({"ready": true, "leader": true, "lastReconcile": at(12.0), "manifestErrors": ["a.yaml:3:1: bad"],
            "targets": {"east": {"account": "1", "region": "r", "connected": false, "error": "AccessDenied"}},
            "objects": {
                "Service/web": {"kind": "Service", "name": "web", "conditions": [cond("Ready", "False", "ServiceNotFound"), cond("Synced", "False", "ServiceNotFound")],
                    "lastAppliedRevision": null, "lastRedeploy": null, "redeploys": 0, "firstSeen": at(3700.0)},
                "Service/worker": {"kind": "Service", "name": "worker", "conditions": [cond("Ready", "True", "Reconciled"), cond("Synced", "True", "UpToDate")],
                    "lastAppliedRevision": "worker:7", "lastRedeploy": {"at": at(200.0)}, "redeploys": 2, "firstSeen": at(90000.0),
                    "lastRollout": {"deploymentId": "ecs-svc/1", "outcome": "completed"}}}});
        let t = table(&status, now, false);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "OBJECT           READY   SYNCED   REVISION   LAST REDEPLOY   AGE");
        assert_eq!(lines[1], "Service/web      False   False    -          -               61m");
        assert_eq!(lines[2], "Service/worker   True    True     worker:7   3m20s ago       25h");
        let w = table(&status, now, true);
        assert!(
            w.lines()
                .nth(1)
                .unwrap()
                .ends_with("ServiceNotFound   -                     ecs service prod/web: not found"),
            "{w}"
        );
        assert!(w.lines().nth(2).unwrap().contains("ecs-svc/1 completed"), "{w}");
        let n = notes(&status, now);
        assert_eq!(n[0], "controller: leader, ready, last reconcile 12s ago");
        assert!(n[1].contains("a.yaml:3:1") && n[2].contains("east not connected: AccessDenied"), "{n:?}");
    }

    #[test]
    fn ages_as_kubectl_prints_them() {
        let cases = [
            (5.0, "5s"),
            (119.0, "119s"),
            (192.0, "3m12s"),
            (1500.0, "25m"),
            (18240.0, "5h4m"),
            (90000.0, "25h"),
            (266400.0, "3d2h"),
            (864000.0, "10d"),
            (-3.0, "0s"),
        ];
        for (s, want) in cases {
            assert_eq!(age(s), want, "{s}");
        }
    }
}
