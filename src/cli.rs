//! Command-line arguments and the commands they run. `main` only parses and
//! calls [`run`].

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::aws::Aws;
use crate::aws::limit::RateLimits;
pub use crate::logging::LogFormat;
use crate::manifest;
use crate::metrics::Metrics;
use crate::model::Desired;
use crate::reconcile::Reconciler;
use crate::stdout::emit;

#[derive(Debug, Parser)]
#[command(name = "secretwire", version, about = "Keeps the secret wiring of Amazon ECS services true to a GitOps repo")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Identifies this controller in the ownership tag secretwire.dev/managed-by
    /// and in the names of its queue and rules (letters, digits, - and _; at most 40).
    #[arg(long, global = true, default_value = "default", env = "SECRETWIRE_CONTROLLER_ID", value_parser = controller_id)]
    pub controller_id: String,
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// More log output (-v debug, -vv debug for the AWS SDK too, -vvv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Client-side rate limit of one AWS API, `Service:Operation=RATE[/BURST]`
    /// (repeatable; defaults are AWS's documented limits, e.g. ECS:RegisterTaskDefinition=1/20).
    #[arg(long = "rate-limit", global = true, value_name = "OP=RATE[/BURST]")]
    pub rate_limits: Vec<String>,
    /// Turn the client-side rate limiter off (an emulator has no limits).
    #[arg(long, global = true)]
    pub no_rate_limit: bool,
    /// Less log output (-q warnings only, -qq errors only).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub quiet: u8,
    /// The managed policy every role secretwire creates or manages gets as its
    /// permissions boundary (put back when it drifts); `policy` then allows
    /// role writes only with it.
    #[arg(long, global = true, value_name = "POLICY_ARN", env = "SECRETWIRE_PERMISSIONS_BOUNDARY", value_parser = policy_arn)]
    pub permissions_boundary: Option<String>,
    /// The tenant file: which manifest files belong to which team, and what
    /// each team's objects may reference, name and grant. Outside the manifest
    /// tree; without it the repo is one tenant.
    #[arg(long, global = true, value_name = "FILE", env = "SECRETWIRE_TENANTS")]
    pub tenants: Option<PathBuf>,
    /// The IAM path every role secretwire creates gets (`/secretwire/`);
    /// `policy` scopes role writes to it, and a role elsewhere is not adopted.
    #[arg(long, global = true, value_name = "PATH", env = "SECRETWIRE_ROLE_PATH", value_parser = role_path)]
    pub role_path: Option<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Output {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum StatusOutput {
    Table,
    Wide,
    Json,
}

#[derive(Debug, Args)]
pub struct ManifestArgs {
    /// The manifest directory (read recursively).
    #[arg(short = 'm', long = "manifests", default_value = "manifests")]
    pub dir: PathBuf,
}

// Built once per process from the arguments: the size of `Run` costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the manifests; print every problem as path:line:col.
    Validate(ManifestArgs),
    /// Show what apply would change.
    Plan {
        #[command(flatten)]
        manifests: ManifestArgs,
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
        /// Exit 2 when changes are pending (0: none, 1: error).
        #[arg(long)]
        detailed_exitcode: bool,
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        #[command(flatten)]
        prune: PruneArgs,
    },
    /// Make AWS match the manifests.
    Apply {
        #[command(flatten)]
        manifests: ManifestArgs,
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
        /// Objects reconciled at once.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Follow the deployments apply started to their end; exit 1 if one
        /// failed, was rolled back or timed out.
        #[arg(long)]
        wait: bool,
        /// With --wait: give up on a rollout after this long.
        #[arg(long, default_value = "30m", value_parser = duration, requires = "wait")]
        timeout: std::time::Duration,
        #[command(flatten)]
        prune: PruneArgs,
    },
    /// Run as a controller: reconcile continuously and redeploy on rotation events.
    Run {
        #[command(flatten)]
        manifests: ManifestArgs,
        /// Address of /healthz, /readyz, /metrics and /status.
        #[arg(long, default_value = "127.0.0.1:9464")]
        listen: std::net::SocketAddr,
        /// Full reconcile (and stale check) at least this often.
        #[arg(long, default_value = "5m", value_parser = duration)]
        resync_interval: std::time::Duration,
        /// Changes to one service within this window become one deployment.
        #[arg(long, default_value = "10s", value_parser = duration)]
        debounce: std::time::Duration,
        /// Consume this existing SQS queue instead of creating one.
        #[arg(long, conflicts_with = "no_events")]
        events_queue: Option<String>,
        /// Do not consume rotation events (resync and the stale check still run).
        #[arg(long)]
        no_events: bool,
        /// Objects reconciled at once.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Receives of a message whose redeploy keeps failing before it goes to the dead-letter queue.
        #[arg(long, default_value_t = 5)]
        max_receives: u32,
        /// A failed redeploy's message comes back after this, times its receive count.
        #[arg(long, default_value = "10s", value_parser = duration)]
        failure_backoff: std::time::Duration,
        /// Re-read IAM roles and KMS keys at most this often (they change rarely;
        /// a role secretwire writes is re-read at once).
        #[arg(long, default_value = "30m", value_parser = duration)]
        reverify_interval: std::time::Duration,
        /// How long a received message stays invisible to other receivers
        /// before SQS delivers it again (default: the debounce window plus 2m).
        #[arg(long, value_parser = duration)]
        visibility_timeout: Option<std::time::Duration>,
        /// An object whose writes failed terminally (AccessDenied, a conflict, a
        /// missing fromEnv variable) is not retried for this long, unless what
        /// it would write changes (a manifest edit, a change in AWS).
        #[arg(long, default_value = "1h", value_parser = duration)]
        terminal_retry_interval: std::time::Duration,
        /// A deployment secretwire started that has not ended after this is reported timed out.
        #[arg(long, default_value = "30m", value_parser = duration)]
        rollout_timeout: std::time::Duration,
        /// Deployments secretwire keeps in progress at once; further redeploys
        /// wait in order (every new task fetches its secrets at start, and a
        /// throttled fetch fails the task).
        #[arg(long, default_value_t = 10)]
        max_parallel_rollouts: usize,
        /// POST a JSON event (Slack-compatible `text`) for each rollout start and end (repeatable).
        #[arg(long = "notify-webhook", value_name = "URL")]
        notify_webhooks: Vec<String>,
        /// Put the same events on the default EventBridge bus (`source: secretwire`).
        #[arg(long)]
        notify_eventbridge: bool,
        #[command(flatten)]
        prune: PruneArgs,
        /// Run as one of several replicas: lead only while holding the lease
        /// in this DynamoDB table (created if missing, on-demand); the others
        /// stand by. Without it this replica always leads.
        #[arg(long, value_name = "dynamodb:TABLE", value_parser = lease_table)]
        lease: Option<String>,
        /// How long a lease lasts without renewal.
        #[arg(long, default_value = "15s", value_parser = duration, requires = "lease")]
        lease_duration: std::time::Duration,
        /// How often the leader renews it (and a standby looks at it).
        #[arg(long, default_value = "5s", value_parser = duration, requires = "lease")]
        lease_renew: std::time::Duration,
    },
    /// Write manifests for services wired by hand: their secrets, log secrets
    /// and repository credentials as references, their roles and values adopted.
    /// Reads no value, ever.
    Init {
        /// ECS cluster (name or ARN) to read (repeatable).
        #[arg(long = "cluster", required = true, value_name = "CLUSTER")]
        clusters: Vec<String>,
        /// Only these services (repeatable; default every service of the clusters).
        #[arg(long = "service", value_name = "SERVICE")]
        services: Vec<String>,
        /// Write the manifests under this directory (values.yaml, services/NAME.yaml);
        /// without it they go to stdout as one YAML stream. Never overwrites a file.
        #[arg(short = 'o', long = "output-dir", value_name = "DIR")]
        output_dir: Option<PathBuf>,
        /// Reads at once.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
    },
    /// A running controller's /status as a table (like `kubectl get`).
    Status {
        /// The controller's address (its `run --listen`).
        #[arg(long, default_value = "http://127.0.0.1:9464", env = "SECRETWIRE_URL")]
        url: String,
        #[arg(short = 'o', long = "output", value_enum, default_value_t = StatusOutput::Table)]
        output: StatusOutput,
    },
    /// Exit 0 when the controller at --url answers /healthz with 200, else 1
    /// (a container health check where the image has no curl).
    Healthcheck {
        #[arg(long, default_value = "http://127.0.0.1:9464", env = "SECRETWIRE_URL")]
        url: String,
        /// Give up after this long.
        #[arg(long, default_value = "3s", value_parser = duration)]
        timeout: std::time::Duration,
    },
    /// Print the task definition JSON apply would register for a Service.
    Render {
        #[command(flatten)]
        manifests: ManifestArgs,
        /// metadata.name of the Service.
        service: String,
    },
    /// Print the IAM policy secretwire itself needs for these manifests.
    Policy {
        #[command(flatten)]
        manifests: ManifestArgs,
        /// Leave out what only `run` needs (SQS, EventBridge).
        #[arg(long)]
        apply_only: bool,
        /// Include events:PutEvents on the default bus, for `run --notify-eventbridge`.
        #[arg(long, conflicts_with = "apply_only")]
        notify_eventbridge: bool,
        /// Include what `--prune` needs (deleting and untagging what secretwire owns).
        #[arg(long)]
        prune: bool,
        /// Include what `run --lease dynamodb:TABLE` needs on that table.
        #[arg(long, value_name = "dynamodb:TABLE", value_parser = lease_table, conflicts_with = "apply_only")]
        lease: Option<String>,
        /// Print, for this Target, the policy its role needs and the trust policy
        /// that lets the controller assume it (JSON: `rolePolicy`, `trustPolicy`).
        #[arg(long, value_name = "NAME")]
        target: Option<String>,
        /// The principal the Target's trust policy names (default: the caller's
        /// role, from GetCallerIdentity; give the full ARN when that role has a path).
        #[arg(long, value_name = "ARN", requires = "target")]
        controller_principal: Option<String>,
    },
}

impl Command {
    /// The manifest directory the command reads, if it reads one.
    fn manifests_dir(&self) -> Option<&std::path::Path> {
        match self {
            Command::Validate(m) => Some(&m.dir),
            Command::Plan { manifests, .. }
            | Command::Apply { manifests, .. }
            | Command::Run { manifests, .. }
            | Command::Render { manifests, .. }
            | Command::Policy { manifests, .. } => Some(&manifests.dir),
            Command::Init { .. } | Command::Status { .. } | Command::Healthcheck { .. } => None,
        }
    }
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Act on what the plan shows as prunable (`-` lines): delete, deregister,
    /// or for `Retain` remove secretwire's tags. Without it they are only shown.
    #[arg(long)]
    pub prune: bool,
    /// Refuse the whole pass when more objects than this would be pruned
    /// (default: 25% of the objects secretwire owns, at least 1).
    #[arg(long, value_name = "N")]
    pub max_prune: Option<usize>,
}

impl PruneArgs {
    fn mode(&self) -> crate::reconcile::PruneMode {
        crate::reconcile::PruneMode { enabled: self.prune, max: self.max_prune }
    }
}

/// An IAM managed policy ARN: `arn:PARTITION:iam::ACCOUNT|aws:policy/[PATH/]NAME`.
fn policy_arn(s: &str) -> Result<String, String> {
    let parts: Vec<&str> = s.splitn(6, ':').collect();
    let ok = parts.len() == 6
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == "iam"
        && parts[3].is_empty()
        && (parts[4] == "aws" || (parts[4].len() == 12 && parts[4].bytes().all(|b| b.is_ascii_digit())))
        && parts[5].strip_prefix("policy/").is_some_and(|n| !n.is_empty() && !n.ends_with('/'));
    if ok { Ok(s.to_string()) } else { Err("an IAM managed policy ARN, arn:aws:iam::ACCOUNT:policy/NAME".into()) }
}

/// `dynamodb:TABLE`, TABLE a DynamoDB table name (3 to 255 of A-Z a-z 0-9 _ - .).
fn lease_table(s: &str) -> Result<String, String> {
    let t = s.strip_prefix("dynamodb:").ok_or("dynamodb:TABLE")?;
    let ok = (3..=255).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
    if ok { Ok(t.to_string()) } else { Err("dynamodb:TABLE with a valid DynamoDB table name".into()) }
}

/// An IAM path: `/`, or `/a/b/`; at most 512 characters of `!` to `~`.
fn role_path(s: &str) -> Result<String, String> {
    let ok = s.starts_with('/')
        && s.ends_with('/')
        && s.len() <= 512
        && !s.contains("//")
        && s.bytes().all(|b| (0x21..=0x7e).contains(&b));
    if ok { Ok(s.to_string()) } else { Err("an IAM path such as /secretwire/ (starts and ends with /)".into()) }
}

fn controller_id(s: &str) -> Result<String, String> {
    let ok = !s.is_empty() && s.len() <= 40 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok { Ok(s.to_string()) } else { Err("1 to 40 ASCII letters, digits, `-` or `_`".into()) }
}

/// `500ms`, `10s`, `5m`, `1h`, or plain seconds.
pub fn duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().map_err(|_| format!("`{s}` is not a duration (like 500ms, 10s, 5m, 1h)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "" | "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("`{s}`: unknown unit `{unit}` (ms, s, m, h)")),
    };
    if !secs.is_finite() || !(0.0..=7.0 * 86400.0).contains(&secs) {
        return Err(format!("`{s}` is out of range"));
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

/// Loads manifests; prints every diagnostic to stderr. `None` when any
/// manifest is invalid; an object a tenant rule refuses is left out (listed
/// in `Desired::refused`) and the rest is returned.
fn load(dir: &std::path::Path, tenants: Option<&manifest::tenant::Tenants>) -> Option<Desired> {
    let l = manifest::load(dir, tenants);
    for d in l.errors.iter().chain(&l.refusals) {
        eprintln!("{d}");
    }
    if !l.errors.is_empty() {
        eprintln!("{} error(s); nothing was applied.", l.errors.len() + l.refusals.len());
        return None;
    }
    if !l.refusals.is_empty() {
        eprintln!(
            "{} tenant rule breach(es): {} object(s) refused, the rest goes on.",
            l.refusals.len(),
            l.desired.refused.len()
        );
    }
    for w in crate::fleet::split::static_warnings(&l.desired) {
        eprintln!("{w}");
    }
    Some(l.desired)
}

/// Reads `--tenants`; every problem is printed. The file must be outside the
/// manifest tree: a tenant that could edit it could widen itself.
pub fn load_tenants(file: &std::path::Path, dir: &std::path::Path) -> Option<manifest::tenant::Tenants> {
    let inside = match (std::fs::canonicalize(file), std::fs::canonicalize(dir)) {
        (Ok(f), Ok(d)) => f.starts_with(d),
        _ => false,
    };
    if inside {
        eprintln!("{}: error: the tenant file must be outside the manifest tree {}", file.display(), dir.display());
        return None;
    }
    match manifest::tenant::Tenants::load(file) {
        Ok(t) => Some(t),
        Err(diags) => {
            for d in &diags {
                eprintln!("{d}");
            }
            eprintln!("{} error(s) in the tenant file; nothing was applied.", diags.len());
            None
        }
    }
}

async fn reconciler(
    controller_id: &str,
    concurrency: usize,
    metrics: Arc<Metrics>,
    limits: RateLimits,
    prune: crate::reconcile::PruneMode,
) -> anyhow::Result<Reconciler> {
    let aws = Aws::connect(metrics, limits).await?;
    Ok(Reconciler {
        aws,
        controller_id: controller_id.to_string(),
        concurrency: concurrency.max(1),
        cache: Default::default(),
        // One-shot commands read roles and keys every time.
        slow: Default::default(),
        prune,
    })
}

/// The controller's own reconciler and one per Target the manifests declare.
async fn fleet(
    controller_id: &str,
    concurrency: usize,
    metrics: Arc<Metrics>,
    limits: RateLimits,
    prune: crate::reconcile::PruneMode,
    desired: &crate::model::Desired,
) -> anyhow::Result<crate::fleet::Fleet> {
    let home = reconciler(controller_id, concurrency, metrics, limits.clone(), prune).await?;
    let fleet = crate::fleet::Fleet::connect(home, desired, &limits).await;
    for m in &fleet.members {
        if let (Some(t), Err(e)) = (&m.target, &m.reconciler) {
            eprintln!("warning: Target {t}: {e}; its objects are not reconciled");
        }
    }
    Ok(fleet)
}

fn print_json(v: &serde_json::Value) {
    emit(&format!("{}\n", serde_json::to_string_pretty(v).unwrap_or_default()));
}

/// Runs the command; returns the process exit code.
pub async fn run(cli: Cli) -> anyhow::Result<i32> {
    let metrics = Arc::new(Metrics::new());
    let mut limits = RateLimits::aws_defaults();
    limits.enabled = !cli.no_rate_limit;
    for spec in &cli.rate_limits {
        limits.set(spec).map_err(anyhow::Error::msg)?;
    }
    let platform = crate::model::Platform {
        permissions_boundary: cli.permissions_boundary.clone(),
        role_path: cli.role_path.clone().filter(|p| p != "/"),
    };
    let tenants = match (&cli.tenants, cli.command.manifests_dir()) {
        (Some(file), Some(dir)) => match load_tenants(file, dir) {
            Some(t) => Some(Arc::new(t)),
            None => return Ok(1),
        },
        _ => None,
    };
    let load = |dir: &std::path::Path| {
        load(dir, tenants.as_deref()).map(|mut d| {
            d.platform = platform.clone();
            d
        })
    };
    match cli.command {
        Command::Init { clusters, services, output_dir, concurrency } => {
            let aws = Aws::connect(metrics, limits).await?;
            let found = crate::aws::discover::discover(&aws, &clusters, &services, concurrency.max(1)).await?;
            crate::init::write::write(&found, &clusters, &services, output_dir.as_deref())
        }
        Command::Status { url, output } => {
            let base = url.trim_end_matches('/');
            let answer = match crate::http_get::get(&format!("{base}/status"), std::time::Duration::from_secs(10)).await
            {
                Ok(a) if a.status == 200 => a,
                Ok(a) => {
                    eprintln!("error: {base}/status answered {}", a.status);
                    return Ok(1);
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    return Ok(1);
                }
            };
            let status: serde_json::Value = match serde_json::from_str(&answer.body) {
                Ok(v) => v,
                Err(e) => {
                    eprintln!("error: {base}/status is not JSON: {e}");
                    return Ok(1);
                }
            };
            match output {
                StatusOutput::Json => print_json(&status),
                table => {
                    let now = crate::follow::now();
                    for n in crate::statusview::notes(&status, now) {
                        eprintln!("{n}");
                    }
                    emit(&crate::statusview::table(&status, now, table == StatusOutput::Wide));
                }
            }
            Ok(0)
        }
        Command::Healthcheck { url, timeout } => {
            let url = format!("{}/healthz", url.trim_end_matches('/'));
            match crate::http_get::get(&url, timeout).await {
                Ok(a) if a.status == 200 => Ok(0),
                Ok(a) => {
                    eprintln!("unhealthy: {url} answered {}", a.status);
                    Ok(1)
                }
                Err(e) => {
                    eprintln!("unhealthy: {e}");
                    Ok(1)
                }
            }
        }
        Command::Validate(m) => {
            if tenants.is_none() {
                eprintln!("note: no --tenants: the repo is treated as one tenant (no tenant rule applies)");
            }
            let Some(d) = load(&m.dir) else { return Ok(1) };
            if !d.refused.is_empty() {
                return Ok(1);
            }
            emit(&format!(
                "{} valid: {} parameters, {} secrets, {} services{}.\n",
                m.dir.display(),
                d.parameters.len(),
                d.secrets.len(),
                d.services.len(),
                tenants
                    .as_ref()
                    .map_or(String::new(), |t| format!(", within the rules of {} tenant(s)", t.tenants.len()))
            ));
            Ok(0)
        }
        Command::Plan { manifests, output, detailed_exitcode, concurrency, prune } => {
            let Some(d) = load(&manifests.dir) else { return Ok(1) };
            let f = fleet(&cli.controller_id, concurrency, metrics, limits, prune.mode(), &d).await?;
            let plan = f.plan(&d, false).await?;
            match output {
                Output::Text => emit(&crate::output::plan_text(&plan)),
                Output::Json => print_json(&crate::output::plan_json(&plan)),
            }
            Ok(if plan.has_failures() || !d.refused.is_empty() {
                1
            } else if detailed_exitcode && plan.has_changes() {
                2
            } else {
                0
            })
        }
        Command::Apply { manifests, output, concurrency, wait, timeout, prune } => {
            let Some(d) = load(&manifests.dir) else { return Ok(1) };
            let f = fleet(&cli.controller_id, concurrency, metrics.clone(), limits, prune.mode(), &d).await?;
            let report = f.apply(&d).await?;
            let tally = metrics.aws_call_tally();
            if output == Output::Text {
                emit(&crate::output::apply_text(&report, &tally));
            }
            let rollouts = if wait {
                let started = report.started_rollouts(crate::follow::now());
                if !started.is_empty() {
                    eprintln!("Waiting for {} rollout(s) (timeout {} s)…", started.len(), timeout.as_secs());
                }
                // Each rollout is followed in its own account, all at once.
                let mut by_target: std::collections::BTreeMap<Option<String>, Vec<_>> = Default::default();
                for s in started {
                    let t = d.services.get(&s.service).and_then(|svc| svc.target.clone());
                    by_target.entry(t).or_default().push(s);
                }
                let waits = by_target.into_iter().filter_map(|(t, group)| {
                    let r = f.member(t.as_deref())?;
                    let observed = t.is_none().then_some(&report.observed);
                    Some(crate::follow::wait(&r.aws, &d, observed, group, timeout))
                });
                Some(futures_util::future::join_all(waits).await.into_iter().flatten().collect::<Vec<_>>())
            } else {
                None
            };
            let rollout_failed = rollouts.iter().flatten().any(|(e, _)| e.outcome.failed());
            match output {
                Output::Text => {
                    if let Some(ended) = &rollouts {
                        emit(&crate::output::rollouts_text(ended));
                    }
                }
                Output::Json => {
                    let mut v = crate::output::apply_json(&report, &tally, metrics.rate_limit_waited());
                    if let Some(ended) = &rollouts {
                        v["rollouts"] = crate::output::rollouts_json(ended);
                    }
                    print_json(&v);
                }
            }
            // Asked to prune and refused: what was asked did not happen.
            let prune_refused = prune.prune && report.plan.prune.guard.refused.is_some();
            // An object a tenant rule refused failed, as any failed object does.
            let refused = !d.refused.is_empty();
            Ok(if report.failed() || rollout_failed || prune_refused || refused { 1 } else { 0 })
        }
        Command::Run {
            manifests,
            listen,
            resync_interval,
            debounce,
            events_queue,
            no_events,
            concurrency,
            max_receives,
            failure_backoff,
            reverify_interval,
            visibility_timeout,
            terminal_retry_interval,
            rollout_timeout,
            max_parallel_rollouts,
            notify_webhooks,
            notify_eventbridge,
            prune,
            lease,
            lease_duration,
            lease_renew,
        } => {
            if lease_renew.is_zero() || lease_renew * 2 > lease_duration {
                eprintln!("error: --lease-renew must be more than 0 and at most half of --lease-duration");
                return Ok(1);
            }
            let events = match (events_queue, no_events) {
                (Some(q), _) => crate::run::EventsMode::Queue(q),
                (None, true) => crate::run::EventsMode::Off,
                (None, false) => crate::run::EventsMode::Ensure,
            };
            let cfg = crate::run::RunConfig {
                dir: manifests.dir,
                listen,
                resync: resync_interval.max(std::time::Duration::from_secs(1)),
                debounce,
                events,
                concurrency: concurrency.max(1),
                controller_id: cli.controller_id,
                max_receives: max_receives.max(1),
                failure_backoff,
                reverify: reverify_interval,
                visibility: visibility_timeout.unwrap_or(debounce + std::time::Duration::from_secs(120)),
                terminal_retry: terminal_retry_interval,
                rollout_timeout,
                max_parallel_rollouts: max_parallel_rollouts.max(1),
                notify: crate::notify::Sinks { webhooks: notify_webhooks, eventbridge: notify_eventbridge },
                prune: prune.mode(),
                platform,
                tenants: tenants.clone(),
                lease,
                lease_timing: crate::run::leader::LeaseTiming { ttl: lease_duration, renew: lease_renew },
            };
            crate::run::run(cfg, metrics, limits).await?;
            Ok(0)
        }
        Command::Render { manifests, service } => {
            let Some(d) = load(&manifests.dir) else { return Ok(1) };
            if d.refused.contains(&crate::model::ObjectKey::new(crate::model::Kind::Service, &service)) {
                eprintln!("error: Service `{service}` is refused by a tenant rule (see above)");
                return Ok(1);
            }
            if !d.services.contains_key(&service) {
                eprintln!("error: no Service `{service}` in {}", manifests.dir.display());
                return Ok(1);
            }
            let f = fleet(&cli.controller_id, 8, metrics, limits, Default::default(), &d).await?;
            let plan = f.plan(&d, true).await?;
            match crate::plan::rendered_task_definition(&plan, &service) {
                Some(td) => {
                    print_json(td);
                    Ok(0)
                }
                None => {
                    let obj = plan.object(&crate::model::ObjectKey::new(crate::model::Kind::Service, &service));
                    for p in obj.map(|o| o.problems.as_slice()).unwrap_or_default() {
                        eprintln!("error: {}: {}", p.resource, p.message);
                    }
                    Ok(1)
                }
            }
        }
        Command::Policy { manifests, apply_only, notify_eventbridge, prune, lease, target, controller_principal } => {
            let Some(whole) = load(&manifests.dir) else { return Ok(1) };
            let aws = Aws::connect(metrics, limits).await?;
            let mut parts = crate::fleet::split::split(&whole);
            if let Some(name) = target {
                let Some(t) = whole.targets.get(&name) else {
                    eprintln!("error: no Target `{name}` in {}", manifests.dir.display());
                    return Ok(1);
                };
                let principal = match controller_principal {
                    Some(p) => p,
                    None => {
                        let me = aws
                            .sts
                            .get_caller_identity()
                            .send()
                            .await
                            .map_err(|e| crate::aws::classify("GetCallerIdentity", e))?;
                        let p = crate::arn::caller_principal(me.arn().unwrap_or_default());
                        eprintln!(
                            "note: the trust policy names {p} (the caller); if that role has a path, give \
                             --controller-principal with its full ARN"
                        );
                        p
                    }
                };
                let part = parts.iter().find(|p| p.target.as_deref() == Some(name.as_str()));
                let part = part.map(|p| p.desired.clone()).unwrap_or_default();
                if part.services.values().any(|s| s.family_from_running) {
                    eprintln!(
                        "note: a Service that names no family is assumed to run the family of its manifest's name \
                         (the target's services are not read for this)"
                    );
                }
                let owner = crate::fleet::owner_id(&cli.controller_id, Some(&name));
                let wants = crate::policy::Wants {
                    run: false,
                    notify_eventbridge: false,
                    prune,
                    controller_id: &owner,
                    lease: None,
                };
                let scope = crate::arn::Scope::new(&t.region, &t.account);
                let mut role_policy = crate::policy::controller_policy(&part, &scope, wants, &Default::default());
                if !apply_only && let Some(st) = role_policy["Statement"].as_array_mut() {
                    st.extend(crate::policy::forwarding_statements(&scope, &cli.controller_id, &name));
                }
                print_json(&serde_json::json!({
                    "target": name,
                    "account": t.account,
                    "region": t.region,
                    "roleArn": t.role_arn,
                    "rolePolicy": role_policy,
                    "trustPolicy": crate::policy::target_trust(&principal, t.external_id.as_deref()),
                }));
                return Ok(0);
            }
            let d = parts.swap_remove(0).desired;
            // A service that names no family keeps the one it runs: ask ECS which.
            let unnamed: Vec<_> = d.services.values().filter(|s| s.family_from_running).collect();
            let mut families = std::collections::BTreeMap::new();
            if !unnamed.is_empty() {
                let pairs = unnamed.iter().map(|s| (s.cluster.as_str(), s.service_name.as_str()));
                match crate::aws::observe::describe_services(&aws, pairs).await {
                    Ok(found) => {
                        for s in &unnamed {
                            if let Some(o) = found.get(&(s.cluster.clone(), s.service_name.clone()))
                                && let Some((family, _)) =
                                    crate::arn::task_definition_short(&o.task_definition).rsplit_once(':')
                            {
                                families.insert(s.name.clone(), family.to_string());
                            }
                        }
                    }
                    Err(e) => eprintln!(
                        "warning: could not read the services ({e}); a service that names no family is assumed \
                         to run the family of its manifest's name"
                    ),
                }
            }
            let wants = crate::policy::Wants {
                run: !apply_only,
                notify_eventbridge,
                prune,
                controller_id: &cli.controller_id,
                lease: lease.as_deref(),
            };
            let policy = crate::policy::controller_policy(&d, &aws.scope, wants, &families);
            let roles = whole.targets.values().map(|t| t.role_arn.clone()).collect();
            let other_region = whole.targets.values().any(|t| t.region != aws.scope.region);
            let bus = (!apply_only && other_region).then(|| crate::aws::forward::home_bus_arn(&aws.scope));
            print_json(&crate::policy::with_target_roles(policy, &roles, bus));
            Ok(0)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(super::duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(super::duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(super::duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(super::duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(super::duration("0"), Ok(Duration::ZERO));
        assert!(super::duration("5 weeks").is_err() && super::duration("-1s").is_err() && super::duration("").is_err());
        assert!(super::controller_id("prod-1").is_ok() && super::controller_id("a b").is_err());
    }
}
