//! `archgate demo`: three whole releases in two repositories on the embedded emulator, through
//! the real handlers. `myapp-1.4.2` scans clean and is published (with `latest`);
//! `myapp-1.5.0` carries a critical finding and is blocked, and the output says why;
//! `apps/web:web-2.0.0` carries the same finding and is published, because its repository's
//! own policy (`repo set apps/web GATE_MAX_CRITICAL=1`) allows one.

use crate::local::{config_with, sample_build_context, LocalEnv, LocalError, LocalFinding};
use crate::report;
use archgate::domain::{Arch, ManifestMode};
use archgate_testkit::builder::ImageShape;
use serde_json::Value;
use std::io::Write;
use std::time::{Duration, Instant};

mod summary;

pub const DEMO_TAG: &str = "myapp-1.4.2";
pub const BLOCKED_TAG: &str = "myapp-1.5.0";
/// A release of a repository of the namespace, whose own policy allows one critical finding.
pub const OTHER_REPOSITORY: &str = "apps/web";
pub const OTHER_RELEASE: &str = "apps/web:web-2.0.0";

const CLEAN_AMD64: &[LocalFinding] = &[LocalFinding {
    id: "CVE-2023-4863",
    severity: "HIGH",
    package: "libwebp",
}];
const CRITICAL_AMD64: &[LocalFinding] = &[
    LocalFinding {
        id: "CVE-2024-3094",
        severity: "CRITICAL",
        package: "xz-utils",
    },
    LocalFinding {
        id: "CVE-2023-4863",
        severity: "HIGH",
        package: "libwebp",
    },
];

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
    pub blocked_reason: Option<String>,
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
            let phase = answer["phase"].as_str().unwrap_or("?");
            if effects.is_empty() {
                format!("applied → {phase}")
            } else {
                format!("applied → {phase} ({})", effects.join(", "))
            }
        }
        "ignored" => format!("ignored: {}", answer["reason"].as_str().unwrap_or("?")),
        _ => format!("error: {}", answer["error_message"].as_str().unwrap_or("?")),
    };
    (text, status == "applied" || status == "ignored")
}

struct Demo {
    env: LocalEnv,
    report: DemoReport,
}

impl Demo {
    /// Runs one handler invocation as a timed, counted step.
    async fn invoke(&mut self, name: String, event: Value) -> Value {
        let (before, started) = (self.env.calls.total(), Instant::now());
        let answer = archgate_testkit::routing::dispatch(&self.env.pipeline, event).await;
        let (outcome, ok) = summarise(&answer);
        progress(&format!("{name}: {outcome}"));
        self.report.steps.push(Step {
            name,
            duration: started.elapsed(),
            calls: Some(self.env.calls.total() - before),
            outcome,
            ok,
        });
        answer
    }

    fn local_step(&mut self, name: String, started: Instant, outcome: String) {
        progress(&format!("{name}: {outcome}"));
        self.report.steps.push(Step {
            name,
            duration: started.elapsed(),
            calls: None,
            outcome,
            ok: true,
        });
    }

    /// Upload → both builds → candidate → both scans, with redeliveries along the way.
    async fn release(
        &mut self,
        tag: &str,
        amd64_findings: &[LocalFinding],
        redeliver: bool,
    ) -> Result<(), LocalError> {
        let key = self.env.upload_key(tag);
        progress(&format!("uploading {key}"));
        let upload = self.env.upload(&key, sample_build_context(tag)).await?;
        self.invoke(
            format!("{tag}: start-builds (S3 Object Created)"),
            upload.clone(),
        )
        .await;
        if redeliver {
            self.invoke(
                format!("{tag}: start-builds (same event redelivered)"),
                upload,
            )
            .await;
        }
        let mut completions = Vec::new();
        for arch in Arch::ALL {
            let started = Instant::now();
            let (event, pushed) = self
                .env
                .finish_arch_build(tag, arch, "SUCCEEDED", ImageShape::Manifest)
                .await?;
            let pushed = pushed.expect("a successful build pushes");
            self.local_step(
                format!("{tag}: local builder {arch} (arch.yml)"),
                started,
                format!("pushed {} {}", pushed.tag, short(pushed.digest.as_str())),
            );
            completions.push((arch, event));
        }
        for (arch, event) in &completions {
            self.invoke(
                format!("{tag}: build-completed ({arch} SUCCEEDED)"),
                event.clone(),
            )
            .await;
        }
        if redeliver {
            let (arch, event) = &completions[1];
            self.invoke(
                format!("{tag}: build-completed ({arch} redelivered)"),
                event.clone(),
            )
            .await;
        }
        for arch in Arch::ALL {
            let findings = if arch == Arch::Amd64 {
                amd64_findings
            } else {
                &[]
            };
            let started = Instant::now();
            let event = self
                .env
                .scan_arch_image(tag, arch, "COMPLETE", findings)
                .await?;
            let summary = if findings.is_empty() {
                "no findings".to_owned()
            } else {
                findings
                    .iter()
                    .map(|f| format!("{} {}", f.severity, f.id))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            self.local_step(format!("{tag}: ECR scan on push {arch}"), started, summary);
            self.invoke(format!("{tag}: scan-gate ({arch} scan)"), event)
                .await;
        }
        Ok(())
    }
}

impl Demo {
    /// `archgate repo set apps/web GATE_MAX_CRITICAL=1`: the repository's own policy,
    /// version 1, stored with the ledger.
    async fn set_policy(&mut self) -> Result<(), LocalError> {
        use archgate::ports::Ledger;
        let started = Instant::now();
        let record = archgate::domain::policy::PolicyRecord {
            repository: OTHER_REPOSITORY.to_owned(),
            version: 1,
            values: [("GATE_MAX_CRITICAL".to_owned(), "1".to_owned())].into(),
            updated_at: self.env.pipeline.now(),
        };
        archgate::aws::DynamoLedger::new(
            self.env.clients.dynamodb.clone(),
            &self.env.config.ledger_table,
        )
        .save_policy(&record, None)
        .await
        .map_err(|e| {
            LocalError::Invalid(format!("storing the policy of {OTHER_REPOSITORY}: {e}"))
        })?;
        self.local_step(
            format!("repo set {OTHER_REPOSITORY} GATE_MAX_CRITICAL=1"),
            started,
            "policy version 1".into(),
        );
        Ok(())
    }

    /// Untagged leftovers of earlier builds, as a busy repository collects them.
    async fn push_orphans(&mut self) -> Result<Vec<archgate::domain::Digest>, LocalError> {
        let started = Instant::now();
        let mut orphans = Vec::new();
        for i in 0..3 {
            let tag =
                archgate::domain::ReleaseTag::parse(&format!("myapp-0.9.{i}")).expect("valid tag");
            let bytes = archgate_testkit::builder::image_manifest(&tag, Arch::Amd64, "orphan");
            let digest = archgate::domain::Digest::of(&bytes);
            self.env
                .clients
                .ecr
                .put_image()
                .repository_name(&self.env.config.repository)
                .image_manifest(String::from_utf8_lossy(&bytes))
                .image_manifest_media_type(archgate::domain::oci::OCI_MANIFEST)
                .image_digest(digest.as_str())
                .send()
                .await
                .map_err(|e| LocalError::Aws {
                    what: "pushing an orphan".into(),
                    source: Box::new(aws_sdk_ecr::Error::from(e)),
                })?;
            orphans.push(digest);
        }
        self.local_step(
            "3 untagged orphans from old builds".into(),
            started,
            "pushed".into(),
        );
        Ok(orphans)
    }

    /// `archgate release verify <tag>` with the key's public key from KMS.
    async fn verify(&mut self, tag: &str) {
        let started = Instant::now();
        let key = match &self.env.config.signing_key {
            Some(name) => archgate::aws::public_key(&self.env.clients.kms, name)
                .await
                .map_err(|e| e.to_string())
                .and_then(|der| {
                    crate::verify::Key::from_der(&der, Some(name.clone()))
                        .map_err(|e| e.to_string())
                })
                .map(Some),
            None => Ok(None),
        };
        let inventory = archgate::aws::EcrRegistry::new(self.env.clients.ecr.clone());
        let verified = match key {
            Ok(key) => {
                crate::verify::verify(&inventory, &self.env.config.repository, tag, key.as_ref())
                    .await
                    .map_err(|e| e.to_string())
            }
            Err(e) => Err(e),
        };
        let (outcome, ok) = match &verified {
            Ok(v) => (
                format!(
                    "provenance + verdict {}",
                    v.attestations[0]
                        .signed_by
                        .as_deref()
                        .map_or("unsigned".to_owned(), |k| format!("signed by {k}"))
                ),
                true,
            ),
            Err(reason) => (format!("does not verify: {reason}"), false),
        };
        progress(&format!("{tag}: release verify: {outcome}"));
        self.report.steps.push(Step {
            name: format!("{tag}: release verify"),
            duration: started.elapsed(),
            calls: None,
            outcome,
            ok,
        });
    }

    /// The scheduled retention cleanup, run as if a week and a day had passed.
    async fn cleanup(&mut self, orphans: &[archgate::domain::Digest]) {
        use archgate::retention::{run, Request};
        let retention = self.env.clients.retention_at(
            self.env.retention_config(&[]),
            archgate::ports::ShiftedClock {
                offset_ms: 8 * 24 * 3600 * 1000,
            },
        );
        let started = Instant::now();
        let report = run(&retention, Request::default()).await;
        let default = &self.env.config.repository;
        let Some(repository) = report
            .repositories
            .iter()
            .find(|r| &r.repository == default)
        else {
            self.report
                .problems
                .push("the retention cleanup reported no repository".into());
            return;
        };
        let kept = repository
            .kept_by_reason
            .iter()
            .map(|(reason, count)| format!("{count} {}", reason.replace('_', " ")))
            .collect::<Vec<_>>()
            .join(", ");
        let outcome = format!(
            "deleted {}, kept {kept}, failed {}, {} bytes reclaimed{}",
            repository.deleted.len(),
            repository.failed.len(),
            repository.bytes_reclaimed,
            repository
                .error
                .as_ref()
                .map(|e| format!(", error: {e}"))
                .unwrap_or_default()
        );
        progress(&format!("retention-cleanup (8 days later): {outcome}"));
        let deleted: std::collections::BTreeSet<_> = repository.deleted.iter().collect();
        let expected: std::collections::BTreeSet<_> = orphans.iter().collect();
        let ok = repository.error.is_none() && deleted == expected;
        if !ok {
            self.report.problems.push(format!(
                "the cleanup should have deleted exactly the 3 orphans: {outcome}"
            ));
        }
        self.report.steps.push(Step {
            name: "retention-cleanup (8 days later)".into(),
            duration: started.elapsed(),
            calls: Some(repository.aws_calls),
            outcome,
            ok,
        });
    }
}

/// Runs the demo on `AWS_ENDPOINT_URL` when set, else on a private emulator.
pub async fn run() -> Result<DemoReport, LocalError> {
    let config = config_with(
        ManifestMode::Native,
        &[(archgate::config::REPOSITORY_PREFIX, "apps/")],
    );
    progress("starting the AWS emulator and provisioning");
    let started = Instant::now();
    let env = match std::env::var("AWS_ENDPOINT_URL") {
        Ok(endpoint) if !endpoint.is_empty() => LocalEnv::attach(endpoint, config).await?,
        _ => LocalEnv::start(config).await?,
    };
    let mut demo = Demo {
        report: DemoReport {
            endpoint: env.endpoint.clone(),
            ..DemoReport::default()
        },
        env,
    };
    let resources = demo.env.provisioned.len();
    demo.local_step(
        "emulator + provision".into(),
        started,
        format!("{resources} resources ready"),
    );

    let orphans = demo.push_orphans().await?;
    demo.release(DEMO_TAG, CLEAN_AMD64, true).await?;
    demo.release(BLOCKED_TAG, CRITICAL_AMD64, false).await?;
    demo.set_policy().await?;
    demo.release(OTHER_RELEASE, CRITICAL_AMD64, false).await?;
    demo.verify(DEMO_TAG).await;
    demo.cleanup(&orphans).await;

    let Demo { env, mut report } = demo;
    let candidate_tag = format!("{DEMO_TAG}-candidate");
    match report::index_children(&env.clients.ecr, &env.config.repository, &candidate_tag).await {
        Ok(children) => report.candidate_children = children,
        Err(problem) => report.problems.push(problem),
    }
    let index = report::resolve(&env.clients.ecr, &env.config.repository, &candidate_tag).await;
    for tag in [DEMO_TAG, "latest"] {
        let resolved = report::resolve(&env.clients.ecr, &env.config.repository, tag).await;
        if resolved.is_none() || resolved != index {
            report
                .problems
                .push(format!("{tag} does not name the {DEMO_TAG} index"));
        }
    }
    if report::resolve(&env.clients.ecr, &env.config.repository, BLOCKED_TAG)
        .await
        .is_some()
    {
        report.problems.push(format!(
            "{BLOCKED_TAG} was blocked but carries its release tag"
        ));
    }
    // The same finding, published in apps/web under its own policy, and only there.
    let other = env.key(OTHER_RELEASE);
    let in_other = report::resolve(&env.clients.ecr, OTHER_REPOSITORY, other.tag.as_str()).await;
    let in_default =
        report::resolve(&env.clients.ecr, &env.config.repository, other.tag.as_str()).await;
    if in_other.is_none() || in_default.is_some() {
        report.problems.push(format!(
            "{OTHER_RELEASE} should be published in {OTHER_REPOSITORY} alone"
        ));
    }
    let events = env.release_events().await?;
    report.blocked_reason = events
        .iter()
        .find(|e| e["detail-type"] == "Release Blocked")
        .and_then(|e| e["detail"]["reason"].as_str())
        .map(str::to_owned);
    report.release_events = events
        .iter()
        .map(|e| {
            format!(
                "{} ({})",
                e["detail-type"].as_str().unwrap_or("?"),
                e["detail"]["tag"]
                    .as_str()
                    .or(e["detail"]["repository"].as_str())
                    .unwrap_or("?")
            )
        })
        .collect();
    report.release_events.sort();
    let expect = [
        // One per repository the scheduled run covers: myapp and apps/web.
        ("Retention Report", 2),
        ("Release Started", 3),
        ("Release Candidate Ready", 3),
        ("Release Published", 2),
        ("Release Blocked", 1),
    ];
    for (kind, count) in expect {
        let seen = events.iter().filter(|e| e["detail-type"] == kind).count();
        if seen != count {
            report
                .problems
                .push(format!("expected {count} `{kind}` event(s), saw {seen}"));
        }
    }

    summary::print_report(&env, &report).await;
    Ok(report)
}

fn short(digest: &str) -> String {
    digest.chars().take(19).collect()
}
