use archgate::aws::{sdk_config, Clients, DynamoLedger};
use archgate::domain::{ReleaseKey, ReleaseTag};
use archgate::ports::Ledger;
use archgate::Config;
use archgate_cli::{demo, provision, replay};
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
    /// Inspect releases in the ledger.
    Release {
        #[command(subcommand)]
        command: ReleaseCommand,
    },
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

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

async fn run(command: Command) -> Result<ExitCode, String> {
    match command {
        Command::Demo => {
            let report = demo::run().await.map_err(|e| error_chain(&e))?;
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
                .map_err(|e| error_chain(&e))?;
            for resource in done {
                println!("{resource}");
            }
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
                    let Some(stored) = ledger.load(&key).await.map_err(|e| error_chain(&e))? else {
                        return Err(format!("no release {key} in the ledger"));
                    };
                    if json {
                        println!(
                            "{}",
                            serde_json::to_string_pretty(&stored.release).unwrap_or_default()
                        );
                    } else {
                        print_status(&stored.release, stored.version);
                    }
                    Ok(ExitCode::SUCCESS)
                }
                ReleaseCommand::List { limit } => {
                    for stored in ledger.list(limit).await.map_err(|e| error_chain(&e))? {
                        let r = &stored.release;
                        println!(
                            "{:<40} {:<16} {}",
                            r.key.to_string(),
                            r.phase().as_str(),
                            format_time(r.updated_at)
                        );
                    }
                    Ok(ExitCode::SUCCESS)
                }
            }
        }
    }
}

fn format_time(millis: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(millis as i128 * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| millis.to_string())
}

fn print_status(release: &archgate::domain::Release, version: u64) {
    use archgate::domain::BuildRole;
    println!(
        "release  {}  ({} , ledger version {version})",
        release.key,
        release.phase()
    );
    println!(
        "source   s3://{}/{} version {}",
        release.source.bucket,
        release.source.key,
        release.source.revision()
    );
    for role in [BuildRole::Amd64, BuildRole::Arm64, BuildRole::Manifest] {
        let build = release.build(role);
        if let Some(id) = &build.build_id {
            let status = build.status.map(|s| s.as_str()).unwrap_or("RUNNING");
            println!("build    {role:<9} {id}  {status}");
        }
    }
    if let Some(candidate) = &release.candidate {
        println!("index    {} {}", candidate.tag, candidate.digest);
        for child in &candidate.children {
            println!("         linux/{:<6} {}", child.arch.as_str(), child.digest);
        }
    }
    if let Some(reason) = release.failure_reason() {
        println!("failed   {reason}");
    }
    println!("timeline");
    for entry in &release.timeline {
        println!("  {}  {}", format_time(entry.at), entry.what);
    }
}
