//! `archgate local …`: a local installation on the emulator, driven by hand with the same
//! handlers as on AWS: up, provision, upload, build, scan, env, down.

use crate::error::CliError;
use crate::local::session::{self, LOCAL_DIR};
use crate::local::{LocalEnv, LocalError, LocalFinding};
use archgate::aws::sdk_config;
use archgate::config::{sample_lookup, RETENTION_REPOSITORIES};
use archgate::domain::Arch;
use archgate::Config;
use archgate_testkit::emulator::{self, Emulator};
use serde_json::Value;
use std::path::Path;

/// How `local env` prints the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EnvFormat {
    Dotenv,
    Sam,
}

/// `archgate local provision`: every resource the configuration names, one line each.
pub async fn provision() -> Result<(), CliError> {
    let config = Config::from_env()?;
    for resource in crate::provision::provision(&sdk_config().await?, &config).await? {
        println!("{resource}");
    }
    Ok(())
}

/// `archgate local up`: the emulator in the background, everything provisioned on it, and
/// `.archgate/local.env` written. The sample configuration, with any `ARCHGATE_*` variable
/// of the environment on top.
pub async fn up() -> Result<(), CliError> {
    match recorded() {
        Recorded::Running(pid) => {
            println!(
                "already up (emulator pid {pid}); its configuration is in {}",
                session::env_file().display()
            );
            return Ok(());
        }
        Recorded::Stale(why) => {
            println!(
                "the emulator recorded in {LOCAL_DIR}/ is not running ({why}); starting a new one"
            );
            forget();
        }
        Recorded::Nothing => {}
    }
    let sample = sample_lookup(&[]);
    let lookup = |name: &str| std::env::var(name).ok().or_else(|| sample(name));
    let config = Config::from_lookup(lookup)?;
    let repositories = lookup(RETENTION_REPOSITORIES).unwrap_or_default();
    let (pid, endpoint) = Emulator::start_detached().map_err(LocalError::from)?;
    let region = emulator::region();
    let sdk = emulator::sdk_config_in(&endpoint, &region).await;
    let provisioned = crate::provision::provision(&sdk, &config).await;
    let provisioned = match provisioned {
        Ok(provisioned) => provisioned,
        Err(error) => {
            stop(pid);
            return Err(LocalError::from(error).into());
        }
    };
    for resource in &provisioned {
        println!("{resource}");
    }
    let mut variables: Vec<(String, String)> = vec![
        ("AWS_ENDPOINT_URL".to_owned(), endpoint.clone()),
        ("AWS_REGION".to_owned(), region),
    ];
    for credential in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
        variables.push((credential.to_owned(), emulator::LOCAL_CREDENTIAL.to_owned()));
    }
    variables.extend(config.to_env().into_iter().map(|(k, v)| (k.to_owned(), v)));
    variables.push((RETENTION_REPOSITORIES.to_owned(), repositories));
    let written = std::fs::create_dir_all(LOCAL_DIR)
        .and_then(|()| std::fs::write(session::env_file(), session::dotenv(&variables)))
        .and_then(|()| std::fs::write(session::pid_file(), record(pid)));
    if let Err(error) = written {
        stop(pid);
        return Err(CliError::InvalidArgument(format!(
            "cannot write {LOCAL_DIR}/: {error}"
        )));
    }
    println!(
        "emulator up at {endpoint} (pid {pid}); configuration in {}: archgate commands run here read it",
        session::env_file().display()
    );
    Ok(())
}

/// `archgate local down`: stops the emulator `local up` started and forgets its files.
pub fn down() -> Result<(), CliError> {
    match recorded() {
        Recorded::Running(pid) => {
            stop(pid);
            println!("emulator (pid {pid}) stopped");
        }
        Recorded::Stale(why) => println!(
            "the emulator recorded in {LOCAL_DIR}/ is not running ({why}); nothing stopped, its record removed"
        ),
        Recorded::Nothing => println!("no emulator running from {LOCAL_DIR}/"),
    }
    forget();
    Ok(())
}

/// `archgate local env`: the local configuration for other tools.
pub fn env(format: EnvFormat) -> Result<(), CliError> {
    let text = std::fs::read_to_string(session::env_file()).map_err(|_| {
        CliError::InvalidArgument(format!(
            "no {} here: run `archgate local up` first",
            session::env_file().display()
        ))
    })?;
    let variables = session::parse(&text);
    match format {
        EnvFormat::Dotenv => print!("{}", session::dotenv(&variables)),
        EnvFormat::Sam => println!(
            "{}",
            serde_json::to_string_pretty(&session::sam_env_vars(&variables)).unwrap_or_default()
        ),
    }
    Ok(())
}

/// `archgate local upload <dir|zip>`: the build context in the source bucket, and the S3
/// event delivered to start-builds.
pub async fn upload(
    path: &Path,
    name: Option<String>,
    repository: Option<&str>,
) -> Result<(), CliError> {
    let env = attached().await?;
    let body = if path.is_dir() {
        zip_directory(path)?
    } else {
        std::fs::read(path).map_err(|e| {
            CliError::InvalidArgument(format!("cannot read {}: {e}", path.display()))
        })?
    };
    let name = name.unwrap_or_else(|| {
        path.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    // Another repository than the default is named by the key's folder (the functions refuse
    // one outside the namespace, and say so).
    let folder = repository
        .filter(|r| *r != env.config.repository)
        .map(|r| format!("{r}/"))
        .unwrap_or_default();
    let key = format!("{}{folder}{name}.zip", env.config.source_prefix);
    let event = env.upload(&key, body).await?;
    answer(env.start_builds(event).await)
}

/// `archgate local build <tag>`: the builders' pushes and completions.
pub async fn build(tag: &str, fail: Option<&str>) -> Result<(), CliError> {
    let env = attached().await?;
    let mut answers = Vec::new();
    for arch in Arch::ALL {
        let status = if fail == Some(arch.as_str()) {
            "FAILED"
        } else {
            "SUCCEEDED"
        };
        let (event, _) = env
            .finish_arch_build(
                tag,
                arch,
                status,
                archgate_testkit::builder::ImageShape::Manifest,
            )
            .await?;
        answers.push(env.build_completed(event).await);
    }
    answers.into_iter().try_for_each(answer)
}

/// `archgate local scan <tag>`: each per-arch image's scan, with the findings given.
pub async fn scan(tag: &str, arch: Option<&str>, findings: &[String]) -> Result<(), CliError> {
    let findings = findings
        .iter()
        .map(|f| parse_finding(f))
        .collect::<Result<Vec<_>, _>>()?;
    let env = attached().await?;
    let mut answers = Vec::new();
    for each in Arch::ALL
        .into_iter()
        .filter(|a| arch.is_none_or(|wanted| wanted == a.as_str()))
    {
        let event = env
            .scan_arch_image(tag, each, "COMPLETE", &findings)
            .await?;
        answers.push(env.scan_gate(event).await);
    }
    answers.into_iter().try_for_each(answer)
}

/// `ID:SEVERITY`. The strings live as long as the command: it ends after this scan.
fn parse_finding(text: &str) -> Result<LocalFinding, CliError> {
    let (id, severity) = text.split_once(':').ok_or_else(|| {
        CliError::InvalidArgument(format!("--finding {text}: expected ID:SEVERITY"))
    })?;
    let severity = severity.trim().to_ascii_uppercase();
    if archgate::domain::gate::Severity::parse(&severity).is_none() || id.trim().is_empty() {
        return Err(CliError::InvalidArgument(format!(
            "--finding {text}: expected ID:SEVERITY with CRITICAL, HIGH, MEDIUM, LOW, INFORMATIONAL or UNDEFINED"
        )));
    }
    Ok(LocalFinding {
        id: Box::leak(id.trim().to_owned().into_boxed_str()),
        severity: Box::leak(severity.into_boxed_str()),
        package: "local",
    })
}

/// The installation `local up` (or the environment) describes, on its running emulator.
async fn attached() -> Result<LocalEnv, CliError> {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").map_err(|_| {
        CliError::InvalidArgument(
            "no local installation here: run `archgate local up` first (or set AWS_ENDPOINT_URL)"
                .to_owned(),
        )
    })?;
    Ok(LocalEnv::attach(endpoint, Config::from_env()?).await?)
}

/// Prints a handler's answer; an error answer fails the command.
fn answer(answer: Value) -> Result<(), CliError> {
    println!("{answer}");
    if answer["status"] == "error" {
        Err(CliError::Incomplete(format!(
            "{} answered with an error",
            answer["function"].as_str().unwrap_or("the handler")
        )))
    } else {
        Ok(())
    }
}

fn zip_directory(dir: &Path) -> Result<Vec<u8>, CliError> {
    use std::io::Write;
    let failed = |e: &dyn std::fmt::Display| {
        CliError::InvalidArgument(format!("cannot zip {}: {e}", dir.display()))
    };
    let mut buffer = std::io::Cursor::new(Vec::new());
    let mut zip = zip::ZipWriter::new(&mut buffer);
    let mut pending = vec![dir.to_path_buf()];
    let mut files = Vec::new();
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).map_err(|e| failed(&e))? {
            let path = entry.map_err(|e| failed(&e))?.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    for path in files {
        let name = path.strip_prefix(dir).map_err(|e| failed(&e))?;
        zip.start_file(
            name.to_string_lossy(),
            zip::write::SimpleFileOptions::default(),
        )
        .map_err(|e| failed(&e))?;
        zip.write_all(&std::fs::read(&path).map_err(|e| failed(&e))?)
            .map_err(|e| failed(&e))?;
    }
    zip.finish().map_err(|e| failed(&e))?;
    Ok(buffer.into_inner())
}

/// The emulator `local up` started, if it still runs.
/// The emulator `local up` recorded, as it stands now.
enum Recorded {
    Nothing,
    /// The very process `local up` started: same pid, same start time, moto's server.
    Running(u32),
    /// A record that names no such process any more: why, for the operator.
    Stale(String),
}

/// Reads `.archgate/emulator.pid` (`<pid> <start time>`) and checks the process it names
/// before anything acts on it: a pid is reused once its process is gone (a crash, a reboot),
/// so only a process with the recorded start time and moto's server in its command line is
/// the emulator.
fn recorded() -> Recorded {
    let Ok(text) = std::fs::read_to_string(session::pid_file()) else {
        return Recorded::Nothing;
    };
    let mut words = text.split_whitespace();
    let (Some(pid), Some(started)) = (
        words.next().and_then(|w| w.parse::<u32>().ok()),
        words.next().and_then(|w| w.parse::<u64>().ok()),
    ) else {
        return Recorded::Stale(format!(
            "{} does not say which process it is (pid and start time)",
            session::pid_file().display()
        ));
    };
    if !alive(pid) {
        return Recorded::Stale(format!("process {pid} is gone"));
    }
    if start_time(pid) != Some(started) || !is_emulator(pid) {
        return Recorded::Stale(format!(
            "process {pid} is another program now (the pid was reused)"
        ));
    }
    Recorded::Running(pid)
}

/// The emulator's record: its pid and start time.
fn record(pid: u32) -> String {
    format!("{pid} {}\n", start_time(pid).unwrap_or_default())
}

/// When a process started, in clock ticks after boot (`/proc/<pid>/stat`, field 22).
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces and parentheses) start at 3.
    stat.rsplit_once(") ")?
        .1
        .split_whitespace()
        .nth(22 - 3)?
        .parse()
        .ok()
}

/// Whether a process runs moto's server as `local up` starts it.
fn is_emulator(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|cmdline| String::from_utf8_lossy(&cmdline).contains("ThreadedMotoServer"))
}

/// Forgets the local installation's files (the record and the configuration).
fn forget() {
    let _ = std::fs::remove_file(session::pid_file());
    let _ = std::fs::remove_file(session::env_file());
}

/// Whether a process runs (a zombie waiting for its reaper does not).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let state = stat.rsplit_once(") ")?.1.chars().next()?;
            Some(state != 'Z' && state != 'X')
        })
        .unwrap_or(false)
}

fn stop(pid: u32) {
    let _ = std::process::Command::new("kill")
        .arg(pid.to_string())
        .status();
}
