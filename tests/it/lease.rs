//! Two replicas of `run` with `--lease dynamodb:TABLE` (moto implements
//! DynamoDB's conditional writes): one leads, the other stands by; after a
//! kill -9 of the leader while it holds a message, the standby takes over
//! and each rotation still makes exactly one deployment, counted at the
//! emulator (the proxy both replicas talk through).

use std::time::Duration;

use crate::faultproxy::{FaultProxy, Faults};
use crate::faults::rotate;
use crate::harness::*;

#[tokio::test]
async fn one_replica_leads_and_after_a_kill_9_the_standby_takes_over_with_one_deployment_per_rotation() {
    let (moto, repo, sdk) = rolled_out_example().await;
    let proxy = FaultProxy::start(moto.endpoint(), Faults::default(), 1);
    let args = [
        "--lease",
        "dynamodb:secretwire-lease",
        "--lease-duration",
        "4s",
        "--lease-renew",
        "1s",
        "--debounce",
        "8s",
        "--visibility-timeout",
        "10s",
    ];
    let replica = || {
        let mut cmd = moto.command();
        cmd.env("AWS_ENDPOINT_URL", &proxy.url);
        start_run_with(cmd, repo.path(), &args)
    };
    let a = replica();
    eventually!("a leads", 60, a, a.status()["leader"] == true && a.get("/readyz").0 == 200);
    let b = replica();
    eventually!("b stands by, ready", 30, b, b.get("/readyz").0 == 200 && b.status()["leaseHolder"].is_string());
    let holder = a.status()["leaseHolder"].clone();
    assert_eq!(b.status()["leader"], false);
    assert_eq!(b.status()["leaseHolder"], holder, "both name the same holder");
    assert_eq!(b.metric("secretwire_reconciles_total{result=\"ok\"}"), 0.0, "a standby reconciles nothing");

    // A rotation while A leads: one deployment.
    rotate(&sdk, 1).await;
    eventually!("the first rotation deployed", 60, a, proxy.deployments_started("web") == 1);
    eventually!("its message consumed", 30, a, queue_depth(&sdk, "secretwire-default-events").await == 0);

    // A second rotation: A holds its message for the debounce window and dies.
    rotate(&sdk, 2).await;
    a.wait_for("the message to be held", Duration::from_secs(30), |r| {
        r.metric("secretwire_events_total{outcome=\"matched\"}") >= 2.0
    });
    a.kill9();
    assert_eq!(proxy.deployments_started("web"), 1, "killed before its window closed");
    eventually!("b leads", 30, b, b.status()["leader"] == true);
    assert_ne!(b.status()["leaseHolder"], holder);
    eventually!("the second rotation deployed", 60, b, proxy.deployments_started("web") == 2);
    // The held message comes back to B (after A's visibility timeout) and is
    // found served: no third deployment. Waited for by B's event count first:
    // at the instant a visibility timeout ends, moto's queue counts can read 0.
    let seen = |b: &Running| -> f64 {
        ["matched", "fresh", "duplicate"]
            .iter()
            .map(|o| b.metric(&format!("secretwire_events_total{{outcome=\"{o}\"}}")))
            .sum()
    };
    eventually!("the returned message reached the new leader", 60, b, seen(&b) >= 1.0);
    eventually!("the returned message consumed", 60, b, queue_depth(&sdk, "secretwire-default-events").await == 0);
    assert_eq!(proxy.deployments_started("web"), 2, "one deployment per rotation across the failover");
    assert_eq!(proxy.deployments_started("worker"), 0, "worker does not read web/api");
    assert_eq!(b.stop().0, 0);
}

/// The lease table throttled, failing and losing answers (the fault proxy
/// faults only DynamoDB's calls): the replicas never both lead, and a
/// rotation still makes exactly one deployment.
#[tokio::test]
async fn a_throttled_lease_table_never_makes_two_leaders() {
    let (moto, repo, sdk) = rolled_out_example().await;
    let faults = Faults {
        throttle: 0.2,
        server_error: 0.05,
        lost_answer: 0.05,
        only: vec!["DescribeTable", "GetItem", "PutItem", "UpdateItem"],
        ..Faults::default()
    };
    let proxy = FaultProxy::start(moto.endpoint(), faults, 0x1EA5E);
    // moto's change times are whole seconds: a redeploy in the rotation's own
    // second leaves a second of doubt that a replica taking over cannot know
    // was answered. The debounce puts the redeploy past it.
    let args =
        ["--lease", "dynamodb:secretwire-lease", "--lease-duration", "4s", "--lease-renew", "1s", "--debounce", "2s"];
    let replica = || {
        let mut cmd = moto.command();
        cmd.env("AWS_ENDPOINT_URL", &proxy.url);
        start_run_with(cmd, repo.path(), &args)
    };
    let (a, b) = (replica(), replica());
    let leaders =
        // A leader that cannot renew in time exits (and answers no more).
        |a: &Running, b: &Running| {
            [a, b].iter().filter(|r| r.try_get("/status").is_some_and(|(_, s)| s.contains("\"leader\": true"))).count()
        };
    eventually!("one leads", 60, a, leaders(&a, &b) == 1);
    // The leader's first pass is done: its stale backstop does not race the rotation.
    let ok = |r: &Running| {
        r.try_get("/metrics").is_some_and(|(_, m)| m.contains("secretwire_reconciles_total{result=\"ok\"}"))
    };
    eventually!("the leader's first pass", 60, a, ok(&a) || ok(&b));
    rotate(&sdk, 1).await;
    // Sampled for a while under faults: never two at once.
    let end = std::time::Instant::now() + Duration::from_secs(15);
    while std::time::Instant::now() < end {
        assert!(leaders(&a, &b) <= 1, "two leaders\n--- a\n{}\n--- b\n{}", a.log(), b.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eventually!("the rotation deployed", 60, a, proxy.deployments_started("web") >= 1);
    eventually!("its message consumed", 60, a, queue_depth(&sdk, "secretwire-default-events").await == 0);
    assert_eq!(proxy.deployments_started("web"), 1, "one deployment\n--- a\n{}\n--- b\n{}", a.log(), b.log());
    assert!(proxy.calls().iter().any(|c| c.fault.is_some()), "the lease table was faulted");
}
