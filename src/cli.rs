//! Command-line arguments and the commands they run. `main` only parses and
//! calls [`run`].

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::aws::Aws;
use crate::manifest;
use crate::metrics::Metrics;
use crate::model::Desired;
use crate::reconcile::Reconciler;

#[derive(Debug, Parser)]
#[command(name = "secretwire", version, about = "Keeps the secret wiring of Amazon ECS services true to a GitOps repo")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Identifies this controller in the ownership tag secretwire.dev/managed-by.
    #[arg(long, global = true, default_value = "default", env = "SECRETWIRE_CONTROLLER_ID")]
    pub controller_id: String,
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// More log output (-v debug, -vv debug for the AWS SDK too, -vvv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Less log output (-q warnings only, -qq errors only).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub quiet: u8,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Output {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct ManifestArgs {
    /// The manifest directory (read recursively).
    #[arg(short = 'm', long = "manifests", default_value = "manifests")]
    pub dir: PathBuf,
}

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
    },
}

/// Loads manifests; prints every diagnostic to stderr. `None` when any is invalid.
fn load(dir: &std::path::Path) -> Option<Desired> {
    let (desired, diags) = manifest::load_dir(dir);
    for d in &diags {
        eprintln!("{d}");
    }
    if diags.is_empty() {
        Some(desired)
    } else {
        eprintln!("{} error(s); nothing was applied.", diags.len());
        None
    }
}

async fn reconciler(controller_id: &str, concurrency: usize, metrics: Arc<Metrics>) -> anyhow::Result<Reconciler> {
    let aws = Aws::connect(metrics).await?;
    Ok(Reconciler {
        aws,
        controller_id: controller_id.to_string(),
        concurrency: concurrency.max(1),
        cache: Default::default(),
    })
}

fn print_json(v: &serde_json::Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

/// Runs the command; returns the process exit code.
pub async fn run(cli: Cli) -> anyhow::Result<i32> {
    let metrics = Arc::new(Metrics::new());
    match cli.command {
        Command::Validate(m) => {
            let Some(d) = load(&m.dir) else { return Ok(1) };
            println!(
                "{} valid: {} parameters, {} secrets, {} services.",
                m.dir.display(),
                d.parameters.len(),
                d.secrets.len(),
                d.services.len()
            );
            Ok(0)
        }
        Command::Plan { manifests, output, detailed_exitcode, concurrency } => {
            let Some(d) = load(&manifests.dir) else { return Ok(1) };
            let r = reconciler(&cli.controller_id, concurrency, metrics).await?;
            let plan = r.plan(&d).await?;
            match output {
                Output::Text => print!("{}", crate::output::plan_text(&plan)),
                Output::Json => print_json(&crate::output::plan_json(&plan)),
            }
            Ok(if plan.has_failures() {
                1
            } else if detailed_exitcode && plan.has_changes() {
                2
            } else {
                0
            })
        }
        Command::Apply { manifests, output, concurrency } => {
            let Some(d) = load(&manifests.dir) else { return Ok(1) };
            let r = reconciler(&cli.controller_id, concurrency, metrics.clone()).await?;
            let report = r.apply(&d).await?;
            let tally = metrics.aws_call_tally();
            match output {
                Output::Text => print!("{}", crate::output::apply_text(&report, &tally)),
                Output::Json => print_json(&crate::output::apply_json(&report, &tally)),
            }
            Ok(if report.failed() { 1 } else { 0 })
        }
        Command::Render { manifests, service } => {
            let Some(d) = load(&manifests.dir) else { return Ok(1) };
            if !d.services.contains_key(&service) {
                eprintln!("error: no Service `{service}` in {}", manifests.dir.display());
                return Ok(1);
            }
            let r = reconciler(&cli.controller_id, 8, metrics).await?;
            let plan = r.plan(&d).await?;
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
        Command::Policy { manifests, apply_only } => {
            let Some(d) = load(&manifests.dir) else { return Ok(1) };
            let aws = Aws::connect(metrics).await?;
            print_json(&crate::policy::controller_policy(&d, &aws.scope, !apply_only));
            Ok(0)
        }
    }
}
