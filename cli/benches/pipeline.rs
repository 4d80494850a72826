//! Measures the release pipeline against the embedded emulator: handler time and AWS calls per
//! event, for start-builds and for both build-completed invocations (the second one runs the
//! native manifest step), plus the pure state machine's throughput.
//!
//! `cargo bench -p archgate-cli --bench pipeline` (or `./dev bench`). Figures go in the README.

use archgate::domain::{
    decide, Arch, BuildRole, BuildStatus, Fact, ManifestMode, ReleaseKey, ReleaseTag, SourceObject,
};
use archgate_cli::local::{default_config, sample_build_context, LocalEnv, LocalFinding};
use archgate_testkit::builder::ImageShape;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const RELEASES: usize = 40;

#[derive(Default)]
struct Series {
    times: Vec<Duration>,
    calls: Vec<BTreeMap<String, usize>>,
}

impl Series {
    fn push(&mut self, time: Duration, calls: Vec<String>) {
        self.times.push(time);
        self.calls.push(archgate::aws::tally(calls));
    }

    fn percentile(&self, p: f64) -> Duration {
        let mut sorted = self.times.clone();
        sorted.sort();
        sorted[((sorted.len() - 1) as f64 * p).round() as usize]
    }

    fn report(&self, name: &str, manifest_ops: Option<&[&str]>) {
        let max_calls = self
            .calls
            .iter()
            .map(|c| c.values().sum::<usize>())
            .max()
            .unwrap_or(0);
        let mut operations: BTreeMap<String, usize> = BTreeMap::new();
        for tally in &self.calls {
            for (op, n) in tally {
                let entry = operations.entry(op.clone()).or_insert(0);
                *entry = (*entry).max(*n);
            }
        }
        println!(
            "| {name} | {:.1} ms | {:.1} ms | {max_calls} | {} |",
            self.percentile(0.5).as_secs_f64() * 1e3,
            self.percentile(0.95).as_secs_f64() * 1e3,
            operations
                .iter()
                .map(|(op, n)| format!("{op} ×{n}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        if let Some(ops) = manifest_ops {
            let step = self
                .calls
                .iter()
                .map(|t| {
                    ops.iter()
                        .map(|op| t.get(*op).copied().unwrap_or(0))
                        .sum::<usize>()
                })
                .max()
                .unwrap_or(0);
            println!(
                "|   of which the native manifest step | | | {step} | {} |",
                ops.join(" + ")
            );
        }
    }
}

#[tokio::main]
async fn main() {
    let env = LocalEnv::start(default_config(ManifestMode::Native))
        .await
        .expect("the emulator is required");
    let mut start_builds = Series::default();
    let mut first_completion = Series::default();
    let mut second_completion = Series::default();
    let mut manifest_step = Vec::new();
    let mut first_scan = Series::default();
    let mut promoting_scan = Series::default();
    let mut blocking_scan = Series::default();
    let critical = [LocalFinding {
        id: "CVE-2024-3094",
        severity: "CRITICAL",
        package: "xz-utils",
    }];

    for i in 0..RELEASES {
        let tag = format!("bench-{i}");
        let event = env
            .upload(&format!("releases/{tag}.zip"), sample_build_context(&tag))
            .await
            .unwrap();
        env.calls.take();
        let started = Instant::now();
        let answer = env.start_builds(event).await;
        start_builds.push(started.elapsed(), env.calls.take());
        assert_eq!(answer["status"], "applied", "{answer}");

        let (a, _) = env
            .finish_arch_build(&tag, Arch::Amd64, "SUCCEEDED", ImageShape::Manifest)
            .await
            .unwrap();
        let (b, _) = env
            .finish_arch_build(&tag, Arch::Arm64, "SUCCEEDED", ImageShape::Manifest)
            .await
            .unwrap();
        env.calls.take();
        let started = Instant::now();
        env.build_completed(a).await;
        first_completion.push(started.elapsed(), env.calls.take());
        let started = Instant::now();
        let answer = env.build_completed(b).await;
        let elapsed = started.elapsed();
        let calls = env.calls.take();
        second_completion.push(elapsed, calls);
        assert_eq!(answer["phase"], "candidate_ready", "{answer}");
        manifest_step.push(elapsed);

        // Every other release is blocked by a critical finding on its amd64 image.
        let blocked = i % 2 == 1;
        let findings: &[LocalFinding] = if blocked { &critical } else { &[] };
        let amd = env
            .scan_arch_image(&tag, Arch::Amd64, "COMPLETE", findings)
            .await
            .unwrap();
        let arm = env
            .scan_arch_image(&tag, Arch::Arm64, "COMPLETE", &[])
            .await
            .unwrap();
        if blocked {
            env.calls.take();
            let started = Instant::now();
            let answer = env.scan_gate(amd).await;
            blocking_scan.push(started.elapsed(), env.calls.take());
            assert_eq!(answer["phase"], "blocked", "{answer}");
        } else {
            env.calls.take();
            let started = Instant::now();
            env.scan_gate(amd).await;
            first_scan.push(started.elapsed(), env.calls.take());
            let started = Instant::now();
            let answer = env.scan_gate(arm).await;
            promoting_scan.push(started.elapsed(), env.calls.take());
            assert_eq!(answer["phase"], "published", "{answer}");
        }
    }
    // A new version of a published release's file: refused and announced.
    let mut refused = Series::default();
    for i in (0..RELEASES).step_by(2).take(10) {
        let tag = format!("bench-{i}");
        let event = env
            .upload(&format!("releases/{tag}.zip"), sample_build_context(&tag))
            .await
            .unwrap();
        env.calls.take();
        let started = Instant::now();
        let answer = env.start_builds(event).await;
        refused.push(started.elapsed(), env.calls.take());
        assert_eq!(answer["phase"], "published", "{answer}");
    }
    env.release_events().await.unwrap();

    println!("\n## Pipeline against the embedded emulator ({RELEASES} releases, native mode)\n");
    println!(
        "| invocation | median | p95 | AWS calls (max) | calls by operation (max per invocation) |"
    );
    println!("|---|---|---|---|---|");
    start_builds.report("start-builds (new upload)", None);
    first_completion.report("build-completed (first arch)", None);
    second_completion.report(
        "build-completed (second arch → index)",
        Some(&["ECR.BatchGetImage", "ECR.PutImage", "EventBridge.PutEvents"]),
    );
    first_scan.report("scan-gate (passing scan, no promotion yet)", None);
    promoting_scan.report(
        "scan-gate (last passing scan → promotion, 1 moving tag)",
        None,
    );
    blocking_scan.report("scan-gate (critical finding → blocked)", None);
    refused.report(
        "start-builds (new version of a published release → Release Rejected)",
        None,
    );

    // The pure decision, without I/O: how many facts per second one core decides.
    let key = ReleaseKey::new("myapp", ReleaseTag::parse("bench-1.0").unwrap());
    let source = SourceObject {
        bucket: "b".into(),
        key: "releases/bench-1.0.zip".into(),
        version_id: Some("v1".into()),
        etag: None,
        size: None,
        uploaded_at: Some(0),
        sequencer: Some("01".into()),
    };
    let upload = Fact::SourceUploaded {
        source,
        manifest_mode: ManifestMode::Native,
    };
    let archgate::domain::Decision::Apply { next, .. } = decide(None, &key, &upload, 0) else {
        unreachable!()
    };
    let mut release = *next;
    for role in [BuildRole::Amd64, BuildRole::Arm64] {
        let fact = Fact::Completed(archgate::domain::EffectResult::BuildStarted {
            role,
            build_id: format!("p:{role}"),
        });
        if let archgate::domain::Decision::Apply { next, .. } =
            decide(Some(&release), &key, &fact, 1)
        {
            release = *next;
        }
    }
    let fact = Fact::BuildChanged {
        role: BuildRole::Amd64,
        build_id: "p:amd64".into(),
        status: BuildStatus::Succeeded,
        image_digest: None,
        image_platform: None,
        builder_image: None,
        origin: None,
    };
    let iterations = 200_000;
    let started = Instant::now();
    for i in 0..iterations {
        std::hint::black_box(decide(Some(&release), &key, std::hint::black_box(&fact), i));
    }
    let per = started.elapsed() / iterations as u32;
    println!("\n## State machine\n\n`decide` on a recorded release: {:.2} µs per fact ({:.0} facts/s on one core)", per.as_secs_f64() * 1e6, 1.0 / per.as_secs_f64());
}
