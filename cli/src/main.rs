use archgate::aws::{sdk_config, Clients, DynamoLedger};
use archgate::domain::gate::Verdict;
use archgate::domain::{Arch, Digest, ReleaseKey, ReleaseTag};
use archgate::error::chain;
use archgate::gatekeeper::{current_verdicts, date_of};
use archgate::ports::{Clock, Ledger, SystemClock};
use archgate::Config;
use archgate_cli::status::{describe_verdict, format_time, print_status};
use archgate_cli::{demo, evaluate, provision, reconcile, replay};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// archgate: S3 build context → native amd64 + arm64 builds → a multi-arch image in ECR.
#[derive(Parser)]
#[command(name = "archgate", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Drive one whole release on the embedded AWS emulator (or AWS_ENDPOINT_URL).
    Demo,
    /// Route EventBridge event files to their handlers and print each result as JSON.
    Replay {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Local installation helpers.
    Local {
        #[command(subcommand)]
        command: LocalCommand,
    },
    /// Inspect releases in the ledger, or judge them again.
    Release {
        #[command(subcommand)]
        command: ReleaseCommand,
    },
    /// Retention cleanup of untagged images that never breaks a multi-arch image.
    Retention {
        #[command(subcommand)]
        command: RetentionCommand,
    },
    /// The scan gate.
    Gate {
        #[command(subcommand)]
        command: GateCommand,
    },
    /// One reconciler pass, the same code the reconciler function runs: re-read releases
    /// waiting for builds or scans, take over effects nobody holds, fail releases past their
    /// deadline. Prints what changed.
    Reconcile {
        /// Say what the pass would do and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum RetentionCommand {
    /// Show what a cleanup would delete, and why each kept image stays.
    Plan(RetentionArgs),
    /// Delete what the plan allows (untagged, old, unreferenced), index before children.
    Apply {
        #[command(flatten)]
        args: RetentionArgs,
        /// Delete even when the plan exceeds the safety valve's share.
        #[arg(long)]
        force: bool,
    },
}

#[derive(clap::Args)]
struct RetentionArgs {
    #[arg(long)]
    repository: String,
    /// The retention age: untagged images younger than this stay (`7d`, `36h`).
    #[arg(long, default_value = "7d", value_parser = parse_age)]
    older_than: i64,
    /// The most of the repository a run may delete (0 < share ≤ 1).
    #[arg(long, default_value_t = 0.5)]
    max_delete_share: f64,
    #[arg(long)]
    json: bool,
}

/// `7d` / `36h` → milliseconds; zero and negative ages are refused.
fn parse_age(value: &str) -> Result<i64, String> {
    let (number, unit_ms) = match value.trim() {
        v if v.ends_with('d') => (&v[..v.len() - 1], 24 * 3600 * 1000),
        v if v.ends_with('h') => (&v[..v.len() - 1], 3600 * 1000),
        v => (v, 24 * 3600 * 1000),
    };
    match number.parse::<i64>() {
        Ok(n) if n > 0 => Ok(n * unit_ms),
        Ok(_) => Err("the age must be positive".to_owned()),
        Err(_) => Err(format!("{value:?} is not an age like 7d or 36h")),
    }
}

#[derive(Subcommand)]
enum GateCommand {
    /// The verdict on a release now (current findings, current policy), changing nothing.
    Check { tag: String },
}

#[derive(Subcommand)]
enum LocalCommand {
    /// Create every resource the configuration names, idempotently.
    Provision,
}

#[derive(Subcommand)]
enum ReleaseCommand {
    /// State, builds, digests and timeline of one release.
    Status {
        tag: String,
        #[arg(long)]
        json: bool,
    },
    /// Recent releases with their state.
    List {
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Read current findings, apply the current policy, and promote or block accordingly
    /// (after an allowlist change or a rescan).
    Evaluate { tag: String },
}

#[tokio::main]
async fn main() -> ExitCode {
    archgate::telemetry::init_cli();
    let cli = Cli::parse();
    match run(cli.command).await {
        Ok(code) => code,
        Err(message) => {
            eprintln!("archgate: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> Result<ExitCode, String> {
    match command {
        Command::Demo => {
            let report = demo::run().await.map_err(|e| chain(&e))?;
            Ok(if report.succeeded() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Replay { files } => {
            let config = Config::from_env().map_err(|e| e.to_string())?;
            let pipeline = Clients::new(&sdk_config().await).pipeline(&config);
            let mut failed = false;
            for file in files {
                let answer = replay::replay_file(&pipeline, &file).await;
                failed |= answer["status"] == "error";
                println!("{answer}");
            }
            Ok(if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Local {
            command: LocalCommand::Provision,
        } => {
            let config = Config::from_env().map_err(|e| e.to_string())?;
            let done = provision::provision(&sdk_config().await, &config)
                .await
                .map_err(|e| chain(&e))?;
            for resource in done {
                println!("{resource}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Retention { command } => retention(command).await,
        Command::Reconcile { dry_run, json } => {
            let config = Config::from_env().map_err(|e| e.to_string())?;
            let pipeline = Clients::new(&sdk_config().await).pipeline(&config);
            reconcile::run(&pipeline, dry_run, json)
                .await
                .map_err(|e| chain(&e))
        }
        Command::Gate {
            command: GateCommand::Check { tag },
        } => {
            let config = Config::from_env().map_err(|e| e.to_string())?;
            let pipeline = Clients::new(&sdk_config().await).pipeline(&config);
            let stored = load(&pipeline, &config, &tag).await?;
            let verdicts = judge_now(&pipeline, &stored.release).await?;
            let mut passes = !verdicts.is_empty();
            for (arch, digest, verdict) in &verdicts {
                passes &= verdict.as_ref().is_some_and(|(v, _)| v.passes());
                println!(
                    "{}",
                    describe_verdict(*arch, digest, verdict.as_ref().map(|(v, _)| v))
                );
            }
            if verdicts.is_empty() {
                println!(
                    "{} has no candidate index yet: nothing to judge",
                    stored.release.key
                );
            }
            println!("gate: {}", if passes { "pass" } else { "not passing" });
            Ok(if passes {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Release {
            command: ReleaseCommand::Evaluate { tag },
        } => {
            let config = Config::from_env().map_err(|e| e.to_string())?;
            let pipeline = Clients::new(&sdk_config().await).pipeline(&config);
            let tag = ReleaseTag::parse(&tag).map_err(|e| e.to_string())?;
            let key = ReleaseKey::new(config.repository.clone(), tag);
            let evaluation = evaluate::evaluate(&pipeline, &key)
                .await
                .map_err(|e| chain(&e))?;
            for (arch, digest, verdict) in &evaluation.verdicts {
                println!("{}", describe_verdict(*arch, digest, verdict.as_ref()));
            }
            for outcome in &evaluation.outcomes {
                println!("  → {}", serde_json::to_string(outcome).unwrap_or_default());
            }
            println!("{} is {}", evaluation.release, evaluation.phase);
            Ok(ExitCode::SUCCESS)
        }
        Command::Release { command } => {
            let config = Config::from_env().map_err(|e| e.to_string())?;
            let clients = Clients::new(&sdk_config().await);
            let ledger = DynamoLedger::new(clients.dynamodb.clone(), &config.ledger_table);
            match command {
                ReleaseCommand::Status { tag, json } => {
                    let tag = ReleaseTag::parse(&tag).map_err(|e| e.to_string())?;
                    let key = ReleaseKey::new(config.repository.clone(), tag);
                    let Some(stored) = ledger.load(&key).await.map_err(|e| chain(&e))? else {
                        return Err(format!("no release {key} in the ledger"));
                    };
                    if json {
                        println!(
                            "{}",
                            serde_json::to_string_pretty(&stored.release).unwrap_or_default()
                        );
                    } else {
                        let mut moving = Vec::new();
                        for tag in &config.moving_tags {
                            let holder = ledger
                                .moving_tag(&config.repository, tag)
                                .await
                                .map_err(|e| chain(&e))?;
                            if holder.is_some_and(|h| h.release == key.tag) {
                                moving.push(tag.clone());
                            }
                        }
                        print_status(&stored.release, stored.version, &moving);
                    }
                    Ok(ExitCode::SUCCESS)
                }
                ReleaseCommand::List { limit } => {
                    let listing = ledger.list(limit).await.map_err(|e| chain(&e))?;
                    for stored in &listing.releases {
                        let r = &stored.release;
                        println!(
                            "{:<40} {:<16} attempt {:<3} {}",
                            r.key.to_string(),
                            r.phase().as_str(),
                            r.attempt,
                            format_time(r.updated_at)
                        );
                    }
                    // One bad item stops nothing: it is listed with the reason.
                    for item in &listing.unreadable {
                        println!("{:<40} {:<16} {}", item.id, "unreadable", item.reason);
                    }
                    Ok(ExitCode::SUCCESS)
                }
                ReleaseCommand::Evaluate { .. } => unreachable!("handled above"),
            }
        }
    }
}

async fn load(
    pipeline: &archgate::aws::AwsPipeline,
    config: &Config,
    tag: &str,
) -> Result<archgate::ports::Stored, String> {
    let tag = ReleaseTag::parse(tag).map_err(|e| e.to_string())?;
    let key = ReleaseKey::new(config.repository.clone(), tag);
    pipeline
        .ledger
        .load(&key)
        .await
        .map_err(|e| chain(&e))?
        .ok_or_else(|| format!("no release {key} in the ledger"))
}

type CurrentVerdict = (Arch, Digest, Option<(Verdict, Option<i64>)>);

async fn judge_now(
    pipeline: &archgate::aws::AwsPipeline,
    release: &archgate::domain::Release,
) -> Result<Vec<CurrentVerdict>, String> {
    let today = date_of(SystemClock.now_millis());
    current_verdicts(&pipeline.config.gate, &pipeline.registry, release, &today)
        .await
        .map_err(|e| chain(&e))
}

async fn retention(command: RetentionCommand) -> Result<ExitCode, String> {
    use archgate::aws::EcrRegistry;
    use archgate::cleanup::{apply_plan_with_progress, plan_repository, publish_report};
    use archgate::domain::retention::RetentionPolicy;
    use std::io::Write;

    let (args, apply, force) = match command {
        RetentionCommand::Plan(args) => (args, false, false),
        RetentionCommand::Apply { args, force } => (args, true, force),
    };
    if !(args.max_delete_share > 0.0 && args.max_delete_share <= 1.0) {
        return Err("--max-delete-share must be above 0 and at most 1".to_owned());
    }
    let table = std::env::var(archgate::config::LEDGER_TABLE)
        .map_err(|_| format!("{} is not set", archgate::config::LEDGER_TABLE))?;
    let clients = Clients::new(&sdk_config().await);
    let ledger = DynamoLedger::new(clients.dynamodb.clone(), &table);
    let inventory = EcrRegistry::new(clients.ecr.clone());
    let policy = RetentionPolicy {
        untagged_age_ms: args.older_than,
        max_delete_share: args.max_delete_share,
        delete_orphan_referrers: false,
        force,
    };
    let survey = plan_repository(
        &inventory,
        &ledger,
        &args.repository,
        &policy,
        SystemClock.now_millis(),
    )
    .await
    .map_err(|e| chain(&e))?;
    let (images, plan) = (&survey.images, &survey.plan);
    if args.json && !apply {
        println!(
            "{}",
            serde_json::to_string_pretty(&plan).unwrap_or_default()
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!("repository {}: {} images", args.repository, images.len());
    for (digest, reason) in &plan.keep {
        println!(
            "  keep    {digest}  {}",
            serde_json::to_string(reason).unwrap_or_default()
        );
    }
    for deletion in &plan.delete {
        println!(
            "  delete  {}  {} ({} bytes)",
            deletion.digest,
            deletion.why,
            deletion.size_bytes.unwrap_or(0)
        );
    }
    for (digest, reason) in &plan.unparseable {
        println!("  unparseable {digest}: {reason}");
    }
    for (digest, reason) in &plan.unreadable {
        println!("  unreadable {digest}: {reason}");
    }
    for (item, reason) in &survey.unreadable_records {
        println!("  ledger item {item} does not parse (its digests are kept): {reason}");
    }
    if let Some(refused) = &plan.refused {
        println!("refused: {refused}");
    }
    println!(
        "{} to delete, {} to keep, {} bytes to reclaim",
        plan.delete.len(),
        plan.keep.len(),
        plan.bytes_reclaimed
    );
    if !apply || plan.refused.is_some() || plan.delete.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    let report = apply_plan_with_progress(
        &inventory,
        &args.repository,
        &survey,
        false,
        |done, total| {
            let filled = done * 30 / total.max(1);
            print!(
                "\r  [{}{}] {done}/{total}",
                "#".repeat(filled),
                ".".repeat(30 - filled)
            );
            let _ = std::io::stdout().flush();
        },
    )
    .await
    .map_err(|e| chain(&e))?;
    println!();
    for (digest, reason) in &report.failed {
        println!("  failed  {digest}: {reason} (left for the next run)");
    }
    if let Ok(bus) = std::env::var(archgate::config::EVENT_BUS) {
        let events = archgate::aws::EventBridgePublisher::new(clients.eventbridge.clone(), &bus);
        if let Err(e) = publish_report(&events, &report).await {
            eprintln!(
                "archgate: could not publish the retention report: {}",
                chain(&e)
            );
        }
    }
    println!(
        "deleted {}, failed {}, reclaimed {} bytes",
        report.deleted.len(),
        report.failed.len(),
        report.bytes_reclaimed
    );
    Ok(if report.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
