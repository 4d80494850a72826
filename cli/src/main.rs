use archgate::error::chain;
use archgate_cli::commands::retention::{self, parse_age};
use archgate_cli::commands::{demo, dlq, gate, local, reconcile, release, replay, repo};
use archgate_cli::error::{CliError, EXIT_STATUS_HELP};
use archgate_cli::local::session;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// archgate: S3 build context → native amd64 + arm64 builds → a multi-arch image in ECR.
#[derive(Parser)]
#[command(name = "archgate", version, after_help = EXIT_STATUS_HELP)]
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
    /// Retention: expire whole releases by policy and clean up untagged images, never
    /// breaking a multi-arch image or touching one in use.
    Retention {
        #[command(subcommand)]
        command: RetentionCommand,
    },
    /// The dead-letter queue: what EventBridge or Lambda gave up on, and sending it back.
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
    /// Each repository's own policy (gate limits and allowlist, moving tags, release
    /// retention), stored with the ledger and versioned; the environment gives every value a
    /// repository does not set.
    Repo {
        #[command(subcommand)]
        command: RepoCommand,
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
    /// Show which releases expire and which stay (with the rule of each), what a cleanup
    /// would delete, and why each kept image stays.
    Plan(RetentionArgs),
    /// Expire the releases and delete the images the plan allows, index before children.
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
    /// One of archgate's repositories: ARCHGATE_REPOSITORY, one under
    /// ARCHGATE_REPOSITORY_PREFIX, or one ARCHGATE_RETENTION_REPOSITORIES names (any other is
    /// refused before any call). Its own policy's release rules apply where no flag is given.
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
    /// List every image with its reason (by default: the kept ones counted by reason and
    /// the first deletions).
    #[arg(long)]
    all: bool,
    /// Keep the newest N published releases; the others may expire
    /// (default: the repository's policy, else $ARCHGATE_RETENTION_KEEP_RELEASES, else no
    /// release expires by count).
    #[arg(long, value_name = "N")]
    keep_releases: Option<String>,
    /// Keep published releases younger than D days
    /// (default: the repository's policy, else $ARCHGATE_RETENTION_KEEP_DAYS).
    #[arg(long, value_name = "D")]
    keep_days: Option<String>,
    /// Never expire releases whose tag matches these patterns, e.g. `v1.*,lts-*`
    /// (default: the repository's policy, else $ARCHGATE_RETENTION_PROTECT).
    #[arg(long, value_name = "PATTERNS")]
    protect: Option<String>,
    /// Expire blocked and failed attempts started more than D days ago
    /// (default: the repository's policy, else $ARCHGATE_RETENTION_ATTEMPT_DAYS, else never).
    #[arg(long, value_name = "D")]
    attempt_days: Option<String>,
}

#[derive(Subcommand)]
enum DlqCommand {
    /// Every message in the dead-letter queue: when, what, who gave up and why.
    List {
        /// The queue URL (default: ARCHGATE_DEAD_LETTER_QUEUE).
        #[arg(long)]
        queue: Option<String>,
    },
    /// Each message's event sent back: a pipeline event through its handler, a scheduled
    /// event to the deployed function it was for (ARCHGATE_RECONCILER_FUNCTION,
    /// ARCHGATE_RETENTION_FUNCTION); handled messages are deleted, the rest stay.
    Redrive {
        /// The queue URL (default: ARCHGATE_DEAD_LETTER_QUEUE).
        #[arg(long)]
        queue: Option<String>,
    },
}

/// A release: `<repository>:<tag>`, or a tag of `--repository` (default: ARCHGATE_REPOSITORY).
#[derive(clap::Args)]
struct ReleaseArg {
    /// The release tag, or `<repository>:<tag>`.
    #[arg(value_name = "[REPOSITORY:]TAG")]
    tag: String,
    /// The repository (one of archgate's: the default, or one under
    /// ARCHGATE_REPOSITORY_PREFIX).
    #[arg(long)]
    repository: Option<String>,
}

#[derive(Subcommand)]
enum RepoCommand {
    /// Every repository archgate manages (a release in the ledger, the default one, a stored
    /// policy, or named by ARCHGATE_RETENTION_REPOSITORIES) with its releases and policy
    /// version.
    List,
    /// A repository's effective policy and where each value comes from (repository,
    /// environment or default).
    Show {
        repository: String,
        #[arg(long)]
        json: bool,
    },
    /// Sets policy values of a repository, e.g. `GATE_MAX_CRITICAL=1 MOVING_TAGS=latest,stable
    /// RETENTION_KEEP_RELEASES=10` (the ARCHGATE_ variables' names without the prefix),
    /// checked as the environment is: every problem is named and nothing is written while there
    /// is one. Each change is a new version; releases judged after it use it.
    Set {
        repository: String,
        #[arg(required = true, value_name = "NAME=VALUE")]
        assignments: Vec<String>,
    },
    /// Removes policy values of a repository: it takes the environment's again (a new
    /// version).
    Unset {
        repository: String,
        #[arg(required = true, value_name = "NAME")]
        names: Vec<String>,
    },
}

#[derive(Subcommand)]
enum GateCommand {
    /// The verdict on a release now (current findings, current policy), changing nothing.
    Check {
        #[command(flatten)]
        release: ReleaseArg,
    },
}

#[derive(Subcommand)]
enum LocalCommand {
    /// Create every resource the configuration names, idempotently.
    Provision,
    /// Start the emulator in the background, provision everything on it and write
    /// `.archgate/local.env`, which every archgate command run here then reads.
    Up,
    /// Stop the emulator `local up` started.
    Down,
    /// Print the local configuration for `cargo lambda watch --env-file` (dotenv) or
    /// `sam local invoke --env-vars` (sam).
    Env {
        #[arg(long, value_enum, default_value = "dotenv")]
        format: local::EnvFormat,
    },
    /// Zip a build context (a directory, or a zip as it is), put it in the source bucket and
    /// deliver the S3 event to start-builds.
    Upload {
        path: std::path::PathBuf,
        /// The release name (default: the directory's or file's name).
        #[arg(long)]
        name: Option<String>,
        /// The repository to release into (under ARCHGATE_REPOSITORY_PREFIX): the upload's key
        /// names it (default: ARCHGATE_REPOSITORY).
        #[arg(long)]
        repository: Option<String>,
    },
    /// Play the builders: push each per-arch image and deliver the completions.
    Build {
        /// The release: `<repository>:<tag>`, or a tag of ARCHGATE_REPOSITORY.
        tag: String,
        /// Let this architecture's build fail.
        #[arg(long, value_parser = ["amd64", "arm64"])]
        fail: Option<String>,
    },
    /// Play the scanner: set each per-arch image's findings and deliver the scan events.
    Scan {
        /// The release: `<repository>:<tag>`, or a tag of ARCHGATE_REPOSITORY.
        tag: String,
        /// Only this architecture's image.
        #[arg(long, value_parser = ["amd64", "arm64"])]
        arch: Option<String>,
        /// A finding to report, as ID:SEVERITY (repeatable), e.g. CVE-2024-3094:CRITICAL.
        #[arg(long = "finding")]
        findings: Vec<String>,
    },
}

#[derive(Subcommand)]
enum ReleaseCommand {
    /// Checks the provenance and gate verdict attached to the index a tag names: signatures
    /// (the key of ARCHGATE_SIGNING_KEY by KMS GetPublicKey, or --key), subjects, verdict.
    Verify {
        #[command(flatten)]
        release: ReleaseArg,
        /// A PEM public key (SubjectPublicKeyInfo) to verify with instead of asking KMS.
        #[arg(long)]
        key: Option<std::path::PathBuf>,
    },
    /// State, builds, digests and timeline of one release.
    Status {
        #[command(flatten)]
        release: ReleaseArg,
        #[arg(long)]
        json: bool,
    },
    /// Each change of a release's state, and the last error of what it is owed while that
    /// keeps failing, until it is published, fails, is rejected, rests blocked or is
    /// announced stalled (exit 0 only when published).
    Watch {
        #[command(flatten)]
        release: ReleaseArg,
        /// Seconds between reads of the ledger.
        #[arg(long, default_value_t = 2)]
        every: u64,
        /// Give up after this many minutes (exit 1).
        #[arg(long, default_value_t = 60)]
        timeout_minutes: u64,
    },
    /// Recent releases with their state.
    List {
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Only this repository's releases (default: every repository's).
        #[arg(long)]
        repository: Option<String>,
    },
    /// Read current findings, apply the current policy, and promote or block accordingly
    /// (after an allowlist change or a rescan).
    Evaluate {
        #[command(flatten)]
        release: ReleaseArg,
    },
}

fn main() -> ExitCode {
    archgate::telemetry::init_cli();
    let cli = Cli::parse();
    // A local installation's configuration, before any thread starts (`local up` writes a
    // new one and reads none).
    if !matches!(
        cli.command,
        Command::Local {
            command: LocalCommand::Up
        }
    ) {
        for (name, value) in session::missing_from_environment(&session::env_file()) {
            std::env::set_var(name, value);
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("archgate: cannot start the async runtime: {error}");
            return ExitCode::from(3);
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            if !error.is_reported() {
                eprintln!("archgate: {}", chain(&error));
            }
            error.exit_code()
        }
    }
}

async fn run(command: Command) -> Result<(), CliError> {
    match command {
        Command::Demo => demo::run().await,
        Command::Replay { files } => replay::run(&files).await,
        Command::Local { command } => match command {
            LocalCommand::Provision => local::provision().await,
            LocalCommand::Up => local::up().await,
            LocalCommand::Down => local::down(),
            LocalCommand::Env { format } => local::env(format),
            LocalCommand::Upload {
                path,
                name,
                repository,
            } => local::upload(&path, name, repository.as_deref()).await,
            LocalCommand::Build { tag, fail } => local::build(&tag, fail.as_deref()).await,
            LocalCommand::Scan {
                tag,
                arch,
                findings,
            } => local::scan(&tag, arch.as_deref(), &findings).await,
        },
        Command::Repo { command } => match command {
            RepoCommand::List => repo::list().await,
            RepoCommand::Show { repository, json } => repo::show(&repository, json).await,
            RepoCommand::Set {
                repository,
                assignments,
            } => repo::set(&repository, &assignments).await,
            RepoCommand::Unset { repository, names } => repo::unset(&repository, &names).await,
        },
        Command::Release { command } => match command {
            ReleaseCommand::Status { release: r, json } => {
                release::status(&r.tag, r.repository.as_deref(), json).await
            }
            ReleaseCommand::List { limit, repository } => {
                release::list(limit, repository.as_deref()).await
            }
            ReleaseCommand::Watch {
                release: r,
                every,
                timeout_minutes,
            } => {
                release::watch(
                    &r.tag,
                    r.repository.as_deref(),
                    std::time::Duration::from_secs(every.max(1)),
                    std::time::Duration::from_secs(timeout_minutes * 60),
                )
                .await
            }
            ReleaseCommand::Evaluate { release: r } => {
                release::evaluate(&r.tag, r.repository.as_deref()).await
            }
            ReleaseCommand::Verify { release: r, key } => {
                release::verify(&r.tag, r.repository.as_deref(), key.as_deref()).await
            }
        },
        Command::Retention { command } => {
            let (args, mode) = match command {
                RetentionCommand::Plan(args) => (args, retention::Mode::Plan),
                RetentionCommand::Apply { args, force } => (args, retention::Mode::Apply { force }),
            };
            let options = retention::Options {
                repository: args.repository,
                older_than_ms: args.older_than,
                max_delete_share: args.max_delete_share,
                json: args.json,
                all: args.all,
                releases: retention::ReleaseFlags {
                    keep_releases: args.keep_releases,
                    keep_days: args.keep_days,
                    protect: args.protect,
                    attempt_days: args.attempt_days,
                },
            };
            retention::run(options, mode).await
        }
        Command::Dlq { command } => match command {
            DlqCommand::List { queue } => dlq::list(queue).await,
            DlqCommand::Redrive { queue } => dlq::redrive(queue).await,
        },
        Command::Gate { command } => match command {
            GateCommand::Check { release: r } => gate::check(&r.tag, r.repository.as_deref()).await,
        },
        Command::Reconcile { dry_run, json } => reconcile::run(dry_run, json).await,
    }
}
