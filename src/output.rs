//! What the CLI prints: a Terraform-like text plan or JSON on stdout. Plans
//! hold names, ARNs and descriptions of values ("generated, 32 characters"),
//! never a value.

use std::fmt::Write;

use serde_json::json;

use crate::plan::Plan;
use crate::reconcile::{ApplyReport, call_summary};
use crate::rollout::Ended;
use crate::rollout::diagnose::Diagnosis;

pub fn plan_text(plan: &Plan) -> String {
    let mut out = String::new();
    for o in &plan.objects {
        let _ = writeln!(out, "{} {}", o.key.kind, o.key.name);
        for c in &o.changes {
            let detail = if c.detail.is_empty() { String::new() } else { format!(": {}", c.detail) };
            let _ = writeln!(out, "  {} {}{detail}", c.action.symbol(), c.resource);
            for line in &c.diff {
                let _ = writeln!(out, "      {line}");
            }
        }
        for p in &o.problems {
            let _ = writeln!(out, "  ! {} {}: {}", p.resource, p.kind.label(), p.message);
        }
    }
    out.push_str(&prune_text(&plan.prune));
    let c = plan.counts();
    let _ = writeln!(
        out,
        "\nPlan: {} to create, {} to update, {} unchanged, {} to prune; {} conflicts, {} errors, {} blocked, {} drift{}.",
        c["create"],
        c["update"],
        c["unchanged"],
        c["prune"],
        c["conflict"],
        c["error"],
        c["blocked"],
        c["drift"],
        match c["warning"] {
            0 => String::new(),
            n => format!(", {n} warnings"),
        }
    );
    if !plan.has_changes() && !plan.has_failures() {
        let _ = writeln!(out, "No changes. AWS matches the manifests.");
    }
    out
}

/// The objects no manifest declares any more, each `-` line saying what
/// happens to it or why it waits, then the guard's verdict.
fn prune_text(prune: &crate::plan::prune::Prune) -> String {
    let mut out = String::new();
    if prune.objects.is_empty() {
        return out;
    }
    let _ = writeln!(out, "Not declared any more (pruned with --prune):");
    for o in &prune.objects {
        let _ = writeln!(out, "{} {}", o.key.kind, o.key.name);
        for c in &o.changes {
            let _ = writeln!(out, "  {} {}: {}", c.action.symbol(), c.resource, c.detail);
        }
    }
    let g = &prune.guard;
    match &g.refused {
        Some(why) => {
            let _ = writeln!(out, "Prune refused: {why}.");
        }
        None => {
            let _ = writeln!(out, "Prune: {} of {} owned objects (at most {} a pass).", g.prunable, g.owned, g.max);
        }
    }
    out
}

pub fn plan_json(plan: &Plan) -> serde_json::Value {
    json!({"objects": plan.objects, "prune": plan.prune, "summary": plan.counts(), "changesPending": plan.has_changes(), "failed": plan.has_failures()})
}

pub fn apply_text(report: &ApplyReport, tally: &std::collections::BTreeMap<String, u64>) -> String {
    let mut out = plan_text(&report.plan);
    let _ = writeln!(out);
    let mut failed = 0;
    for r in &report.results {
        if let Some(e) = &r.error {
            failed += 1;
            let _ = writeln!(out, "failed  {}: {e}", r.key);
        } else if r.ops > 0 {
            let verb = if r.pruned { "pruned " } else { "applied" };
            let _ = writeln!(out, "{verb} {}: {} writes", r.key, r.ops);
        }
    }
    let problems = report.plan.objects.iter().filter(|o| o.problems.iter().any(|p| p.kind.blocks())).count();
    let (calls, writes) = call_summary(tally);
    let _ = writeln!(
        out,
        "Apply: {} objects changed, {failed} failed, {problems} not applied because of problems; {calls} AWS calls, {writes} writes.",
        report.results.iter().filter(|r| r.ops > 0).count()
    );
    out
}

pub fn apply_json(
    report: &ApplyReport,
    tally: &std::collections::BTreeMap<String, u64>,
    waited: f64,
) -> serde_json::Value {
    let (calls, writes) = call_summary(tally);
    json!({
        "plan": plan_json(&report.plan),
        "results": report.results,
        "failed": report.failed(),
        "awsCalls": tally,
        "awsCallCount": calls,
        "awsWriteCount": writes,
        "rateLimitWaitSeconds": waited,
    })
}

/// `apply --wait`'s report: a line per rollout; for each failed one, ECS's
/// reason and the diagnosis right below it.
pub fn rollouts_text(ended: &[(Ended, Option<Diagnosis>)]) -> String {
    let mut out = String::new();
    if ended.is_empty() {
        return out;
    }
    let _ = writeln!(out);
    for (e, d) in ended {
        let s = &e.started;
        let mark = if e.outcome.failed() { "✗" } else { "✓" };
        let _ = writeln!(
            out,
            "{mark} {}: rollout {} after {:.0} s (deployment {}, {})",
            s.service,
            e.outcome.label().replace('_', " "),
            e.duration(),
            s.deployment_id,
            s.detail
        );
        if !e.outcome.failed() {
            continue;
        }
        match d {
            Some(d) => {
                let _ = writeln!(out, "    ECS: {}", d.ecs_reason);
                if let Some(c) = &d.cause {
                    let _ = writeln!(out, "    likely cause: {c}");
                }
                for f in &d.facts {
                    let _ = writeln!(out, "    - {f}");
                }
            }
            None => {
                let _ = writeln!(out, "    {}", e.reason);
            }
        }
    }
    let failed = ended.iter().filter(|(e, _)| e.outcome.failed()).count();
    let _ = writeln!(out, "Rollouts: {} followed, {failed} failed.", ended.len());
    out
}

pub fn rollouts_json(ended: &[(Ended, Option<Diagnosis>)]) -> serde_json::Value {
    ended
        .iter()
        .map(|(e, d)| {
            json!({
                "service": e.started.service,
                "deploymentId": e.started.deployment_id,
                "trigger": e.started.trigger,
                "detail": e.started.detail,
                "outcome": e.outcome,
                "reason": e.reason,
                "seconds": e.duration(),
                "progress": e.progress,
                "diagnosis": d,
            })
        })
        .collect()
}
