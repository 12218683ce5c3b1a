//! Crash safety: `apply` and `run` killed with SIGKILL, then started again.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::faults::{assert_converged, reference_state};
use crate::harness::*;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A small seeded generator (splitmix64) in [0, 1).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `SECRETWIRE_CRASH_TRIALS` (default 6; `make fuzz` runs more) trials, each
/// on a reset emulator: apply is killed at a seeded random moment within the
/// time a whole apply takes, then applied again, and must converge.
#[tokio::test]
async fn apply_killed_at_random_moments_converges_on_the_next_apply() {
    let reference = reference_state().await;
    let trials = env_or("SECRETWIRE_CRASH_TRIALS", 6);
    let seed = env_or("SECRETWIRE_CRASH_SEED", 0xC2A5);
    eprintln!("crash trials: {trials}, seed {seed} (SECRETWIRE_CRASH_SEED to replay)");
    let mut rng = Rng(seed);
    let moto = Moto::start();

    // How long a whole apply takes here: the kills are spread over it.
    moto.bootstrap();
    let repo = example_repo();
    let dir = repo.path().display().to_string();
    let start = Instant::now();
    moto.secretwire(&["apply", "-m", &dir], &demo_env()).assert_code(0);
    let whole = start.elapsed();

    let mut killed_mid_apply = 0;
    for trial in 0..trials {
        moto.reset();
        moto.bootstrap();
        let at = whole.mul_f64(rng.next());
        let mut cmd = moto.command();
        cmd.args(["apply", "-m", &dir]).env("REGISTRY_CREDENTIALS", REGISTRY_CREDENTIALS);
        let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        // Not synchronisation: the kill moment is the input of the trial.
        std::thread::sleep(at);
        if child.try_wait().unwrap().is_none() {
            killed_mid_apply += 1;
        }
        child.kill().unwrap();
        child.wait().unwrap();
        eprintln!("trial {trial}: killed after {at:?} of {whole:?}");

        moto.secretwire(&["apply", "-m", &dir], &demo_env()).assert_code(0);
        assert_converged(&moto, &repo, &reference).await;
    }
    assert!(killed_mid_apply > 0, "no trial killed a running apply (whole apply: {whole:?})");
}

/// `run` holds a rotation's message for its debounce window and is killed:
/// the next `run` still acts on the change (stale backstop at startup), and
/// the message comes back after its visibility timeout and is consumed.
#[tokio::test]
async fn run_killed_while_holding_a_message_still_acts_on_the_change_after_restart() {
    let (moto, repo, sdk) = rolled_out_example().await;
    let first = moto.start_run(repo.path(), &["--debounce", "10s", "--visibility-timeout", "11s"]);
    first.wait_ready();
    let (web0, worker0) = (deployment_id(&sdk, "web").await, deployment_id(&sdk, "worker").await);

    let sm = aws_sdk_secretsmanager::Client::new(&sdk);
    let v = serde_json::json!({"username": "api", "password": "rotated-before-crash-7Hk2"}).to_string();
    sm.put_secret_value().secret_id("web/api").secret_string(v).send().await.unwrap();
    publish_rotation(&sdk, &secret_arn(&sdk, "web/api").await).await;
    first.wait_for("the message to be held", Duration::from_secs(30), |r| {
        r.metric("secretwire_events_total{outcome=\"matched\"}") >= 1.0
    });
    first.kill9();
    assert_eq!(deployment_id(&sdk, "web").await, web0, "killed before its debounce window closed");
    assert_eq!(queue_depth(&sdk, "secretwire-default-events").await, 1, "the held message is still on the queue");

    let second = moto.start_run(repo.path(), &["--debounce", "0s"]);
    second.wait_ready();
    assert_ne!(deployment_id(&sdk, "web").await, web0, "the change is acted on at startup");
    assert_eq!(second.status()["objects"]["Service/web"]["lastRedeploy"]["reason"], "stale");
    // The message returns when the killed controller's visibility timeout ends
    // and reaches the new controller (counted first: at the instant a
    // visibility timeout ends, moto's queue counts can read 0), then is consumed.
    let seen = |r: &Running| -> f64 {
        ["matched", "fresh", "duplicate"]
            .iter()
            .map(|o| r.metric(&format!("secretwire_events_total{{outcome=\"{o}\"}}")))
            .sum()
    };
    second.wait_for("the redelivered message reached the new controller", Duration::from_secs(60), |r| seen(r) >= 1.0);
    let end = Instant::now() + Duration::from_secs(60);
    while queue_depth(&sdk, "secretwire-default-events").await > 0 {
        assert!(Instant::now() < end, "the message was not consumed\n{}", second.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(deployment_id(&sdk, "worker").await, worker0, "worker does not read web/api");
    assert_eq!(second.stop().0, 0);
}
