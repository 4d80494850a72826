//! `archgate demo`: one whole release on the embedded emulator, through the real handlers.

use crate::builder::ImageShape;
use crate::local::{default_config, millis, sample_build_context, LocalEnv, LocalError};
use crate::report;
use archgate::domain::Arch;
use serde_json::Value;
use std::io::Write;
use std::time::{Duration, Instant};

pub const DEMO_TAG: &str = "myapp-1.4.2";
const DEMO_KEY: &str = "releases/myapp-1.4.2.zip";

#[derive(Debug, Clone)]
pub struct Step {
    pub name: String,
    pub duration: Duration,
    /// AWS calls the step made; `None` where they are not counted.
    pub calls: Option<usize>,
    pub outcome: String,
    pub ok: bool,
}

#[derive(Debug, Default)]
pub struct DemoReport {
    pub endpoint: String,
    pub steps: Vec<Step>,
    pub candidate_children: Vec<(String, archgate::domain::Digest)>,
    pub release_events: Vec<String>,
    pub problems: Vec<String>,
}

impl DemoReport {
    pub fn succeeded(&self) -> bool {
        self.problems.is_empty() && self.steps.iter().all(|s| s.ok)
    }
}

fn progress(line: &str) {
    let mut out = std::io::stdout();
    let _ = writeln!(out, "  ▸ {line}");
    let _ = out.flush();
}

fn summarise(answer: &Value) -> (String, bool) {
    let status = answer["status"].as_str().unwrap_or("?");
    let text = match status {
        "applied" => {
            let effects: Vec<&str> = answer["effects"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if effects.is_empty() {
                format!("applied → {}", answer["phase"].as_str().unwrap_or("?"))
            } else {
                format!(
                    "applied → {} ({})",
                    answer["phase"].as_str().unwrap_or("?"),
                    effects.join(", ")
                )
            }
        }
        "ignored" => format!("ignored: {}", answer["reason"].as_str().unwrap_or("?")),
        _ => format!("error: {}", answer["error_message"].as_str().unwrap_or("?")),
    };
    (text, status == "applied" || status == "ignored")
}

/// Runs the demo on `AWS_ENDPOINT_URL` when set, else on a private emulator.
pub async fn run() -> Result<DemoReport, LocalError> {
    let config = default_config("native");
    progress("starting the AWS emulator and provisioning");
    let started = Instant::now();
    let env = match std::env::var("AWS_ENDPOINT_URL") {
        Ok(endpoint) if !endpoint.is_empty() => LocalEnv::attach(endpoint, config).await?,
        _ => LocalEnv::start(config).await?,
    };
    let mut report = DemoReport {
        endpoint: env.endpoint.clone(),
        ..DemoReport::default()
    };
    report.steps.push(Step {
        name: "emulator + provision".into(),
        duration: started.elapsed(),
        calls: None,
        outcome: format!("{} resources ready", env.provisioned.len()),
        ok: true,
    });

    progress(&format!("uploading {DEMO_KEY}"));
    let upload = env.upload(DEMO_KEY, sample_build_context("myapp")).await?;

    let record =
        |report: &mut DemoReport, name: String, started: Instant, before: usize, answer: &Value| {
            let (outcome, ok) = summarise(answer);
            progress(&format!("{name}: {outcome}"));
            report.steps.push(Step {
                name,
                duration: started.elapsed(),
                calls: Some(env.calls.total() - before),
                outcome,
                ok,
            });
        };

    let (before, started) = (env.calls.total(), Instant::now());
    let answer = env.start_builds(upload.clone()).await;
    record(
        &mut report,
        "start-builds (S3 Object Created)".into(),
        started,
        before,
        &answer,
    );

    let (before, started) = (env.calls.total(), Instant::now());
    let answer = env.start_builds(upload).await;
    record(
        &mut report,
        "start-builds (same event redelivered)".into(),
        started,
        before,
        &answer,
    );

    let mut completions = Vec::new();
    for arch in Arch::ALL {
        let started = Instant::now();
        let (event, pushed) = env
            .finish_arch_build(DEMO_TAG, arch, "SUCCEEDED", ImageShape::Manifest)
            .await?;
        let pushed = pushed.expect("a successful build pushes");
        progress(&format!(
            "builder {arch}: pushed {} {}",
            pushed.tag, pushed.digest
        ));
        report.steps.push(Step {
            name: format!("local builder {arch} (arch.yml)"),
            duration: started.elapsed(),
            calls: Some(1),
            outcome: format!("pushed {} {}", pushed.tag, short(pushed.digest.as_str())),
            ok: true,
        });
        completions.push((arch, event));
    }
    for (arch, event) in &completions {
        let (before, started) = (env.calls.total(), Instant::now());
        let answer = env.build_completed(event.clone()).await;
        record(
            &mut report,
            format!("build-completed ({arch} SUCCEEDED)"),
            started,
            before,
            &answer,
        );
    }
    let (arch, event) = &completions[1];
    let (before, started) = (env.calls.total(), Instant::now());
    let answer = env.build_completed(event.clone()).await;
    record(
        &mut report,
        format!("build-completed ({arch} redelivered)"),
        started,
        before,
        &answer,
    );

    let candidate_tag = format!("{DEMO_TAG}-candidate");
    match report::index_children(&env.clients.ecr, &env.config.repository, &candidate_tag).await {
        Ok(children) => report.candidate_children = children,
        Err(problem) => report.problems.push(problem),
    }
    report.release_events = env
        .release_events()
        .await?
        .iter()
        .map(|e| e["detail-type"].as_str().unwrap_or("?").to_owned())
        .collect();
    for expected in ["Release Started", "Release Candidate Ready"] {
        if report
            .release_events
            .iter()
            .filter(|e| *e == expected)
            .count()
            != 1
        {
            report.problems.push(format!(
                "expected exactly one `{expected}` event, saw {:?}",
                report.release_events
            ));
        }
    }

    print_report(&env, &report).await;
    Ok(report)
}

fn short(digest: &str) -> String {
    digest.chars().take(19).collect()
}

async fn print_report(env: &LocalEnv, report: &DemoReport) {
    println!();
    println!("archgate demo — release {DEMO_TAG} on {}", report.endpoint);
    println!();
    println!("{:<40} {:>10} {:>6}  outcome", "step", "time", "calls");
    for step in &report.steps {
        println!(
            "{:<40} {:>10} {:>6}  {}{}",
            step.name,
            millis(step.duration),
            step.calls.map_or_else(|| "-".to_owned(), |c| c.to_string()),
            if step.ok { "" } else { "FAILED " },
            step.outcome
        );
    }
    println!();
    println!("repository {}:", env.config.repository);
    match report::repository_contents(&env.clients.ecr, &env.config.repository).await {
        Ok(rows) => {
            for row in rows {
                println!(
                    "  {:<28} {}  {}",
                    row.tags.join(","),
                    short(&row.digest),
                    row.media_type
                );
            }
        }
        Err(e) => println!("  (could not list: {e})"),
    }
    println!();
    if !report.candidate_children.is_empty() {
        println!("{DEMO_TAG}-candidate is an OCI image index of:");
        for (platform, digest) in &report.candidate_children {
            println!("  {platform:<14} {digest}");
        }
    }
    println!("release events: {}", report.release_events.join(", "));
    if let Ok(Some(stored)) = env.release(DEMO_TAG).await {
        println!(
            "ledger: {} is {} (version {})",
            stored.release.key,
            stored.release.phase(),
            stored.version
        );
    }
    for problem in &report.problems {
        println!("PROBLEM: {problem}");
    }
    println!(
        "{}",
        if report.succeeded() {
            "demo succeeded"
        } else {
            "demo FAILED"
        }
    );
}
