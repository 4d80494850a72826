//! Measures release-level retention's planning on one repository of 10,000 releases (about
//! 50,000 images): the release plan and the image plan together, as a retention run makes
//! them after its reads ([`archgate::retention::plan_survey`]). Best and median of five runs,
//! and the process's CPU time over the five.
//!
//! `cargo bench -p archgate-benches --bench release_planner`. The budget: under 1 s of CPU a plan.

use archgate::domain::gate::{SeverityCounts, Verdict};
use archgate::domain::release::{
    Candidate, CandidateChild, EventKind, Expiry, ExpiryRule, Publication, ScanRecord,
};
use archgate::domain::retention::{
    ImageRecord, ImageUse, ManifestLinks, ReleasePolicy, RetentionPolicy, TagPattern,
};
use archgate::domain::{
    Arch, BuildStatus, Digest, ManifestMode, Millis, Phase, Release, ReleaseKey, ReleaseTag,
    SourceObject,
};
use archgate::retention::{plan_survey, Rules};
use std::collections::HashSet;
use std::time::{Duration, Instant};

const RELEASES: usize = 10_000;
const STRAYS: usize = 15_000;
const RUNS: usize = 5;
const NOW: Millis = 1_800_000_000_000;
const DAY: Millis = 86_400_000;
const BUDGET: Duration = Duration::from_secs(1);

fn digest(name: &str) -> Digest {
    Digest::of(name.as_bytes())
}

fn image(name: &str, tags: Vec<String>, age_days: i64, links: ManifestLinks) -> ImageRecord {
    ImageRecord {
        digest: digest(name),
        tags,
        pushed_at: NOW - age_days * DAY,
        media_type: None,
        size_bytes: Some(30 << 20),
        links,
    }
}

/// Release `n`: published (most), blocked, failed or expired earlier; one a few hours apart.
fn release(n: usize, images: &mut Vec<ImageRecord>) -> Release {
    let tag = if n.is_multiple_of(50) {
        format!("v1.{n}")
    } else {
        format!("v2.{n}")
    };
    let age_days = ((RELEASES - n) / 8) as i64;
    let started = NOW - age_days * DAY;
    let key = ReleaseKey::new("app", ReleaseTag::parse(&tag).expect("a valid tag"));
    let source = SourceObject {
        bucket: "sources".into(),
        key: format!("releases/{tag}.zip"),
        version_id: Some("v1".into()),
        etag: None,
        size: None,
        uploaded_at: Some(started),
        sequencer: Some(format!("{n:016X}")),
    };
    let mut release = Release::new(key, source, ManifestMode::Native, started);
    let release_tag = release.key.tag.clone();
    let children: Vec<Digest> = ["amd64", "arm64"]
        .iter()
        .map(|arch| digest(&format!("{tag}-{arch}")))
        .collect();
    for (at, arch) in Arch::ALL.iter().enumerate() {
        let build = match arch {
            Arch::Amd64 => &mut release.amd64,
            Arch::Arm64 => &mut release.arm64,
        };
        build.build_id = Some(format!("{tag}-{arch}:1"));
        build.status = Some(BuildStatus::Succeeded);
        build.image_digest = Some(children[at].clone());
        images.push(image(
            &format!("{tag}-{arch}"),
            vec![release_tag.arch_tag(*arch)],
            age_days,
            ManifestLinks::NotRead,
        ));
    }
    let index = digest(&format!("{tag}-index"));
    release.candidate = Some(Candidate {
        tag: release_tag.candidate_tag(),
        digest: index.clone(),
        children: Arch::ALL
            .iter()
            .zip(&children)
            .map(|(arch, d)| CandidateChild {
                arch: *arch,
                digest: d.clone(),
            })
            .collect(),
        manifest: None,
        media_type: None,
    });
    let verdict = |passes: bool| {
        if passes {
            Verdict::Pass {
                counts: SeverityCounts::default(),
                allowlisted: vec![],
            }
        } else {
            Verdict::Block {
                rule: "CRITICAL 1 > 0".into(),
                counts: SeverityCounts::default(),
                worst: vec![],
            }
        }
    };
    let kind = n % 20;
    for (arch, child) in Arch::ALL.iter().zip(&children) {
        release.scans.push(ScanRecord {
            arch: *arch,
            digest: child.clone(),
            verdict: verdict(kind != 1),
            scanned_at: started,
            evaluated_at: started,
            scanner: None,
            policy_version: None,
        });
    }
    let mut index_tags = vec![release_tag.candidate_tag()];
    match kind {
        1 => {
            release.emitted = vec![
                EventKind::Started,
                EventKind::CandidateReady,
                EventKind::Blocked,
            ]
        }
        2 => {
            release.arm64.status = Some(BuildStatus::Failed);
            release.candidate = None;
            release.emitted = vec![EventKind::Started, EventKind::Failed];
        }
        _ => {
            release.published = Some(Publication {
                tags: vec![tag.clone()],
                at: started,
            });
            release.emitted = vec![
                EventKind::Started,
                EventKind::CandidateReady,
                EventKind::Published,
            ];
            index_tags.push(tag.clone());
            if kind == 3 {
                release.expired = Some(Expiry {
                    at: NOW - DAY,
                    rule: ExpiryRule::Superseded {
                        keep_releases: Some(100),
                        keep_days: None,
                    },
                    phase: Phase::Published,
                });
                release.emitted.push(EventKind::Expired);
            }
        }
    }
    if release.candidate.is_some() {
        images.push(image(
            &format!("{tag}-index"),
            index_tags,
            age_days,
            ManifestLinks::Index { children },
        ));
        if n.is_multiple_of(5) {
            let sig = format!("sha256-{}.sig", &index.as_str()["sha256:".len()..]);
            images.push(image(
                &format!("{tag}-sig"),
                vec![sig],
                age_days,
                ManifestLinks::NotRead,
            ));
        }
        if n.is_multiple_of(10) {
            images.push(image(
                &format!("{tag}-sbom"),
                vec![],
                age_days,
                ManifestLinks::Manifest {
                    subject: Some(index),
                },
            ));
        }
    }
    release
}

/// CPU time of this process so far (user + system), from /proc.
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = stat.rsplit(')').next()?.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

fn main() {
    let mut images = Vec::new();
    let releases: Vec<Release> = (0..RELEASES).map(|n| release(n, &mut images)).collect();
    for n in 0..STRAYS {
        images.push(image(
            &format!("stray-{n}"),
            vec![],
            (n % 60) as i64,
            ManifestLinks::NotRead,
        ));
    }
    let uses: Vec<ImageUse> = (0..50)
        .map(|n| ImageUse {
            image: format!(
                "123456789012.dkr.ecr.eu-west-1.amazonaws.com/app:v2.{}",
                n * 97 + 1
            ),
            resolved: None,
            user: format!("ecs task definition web:{n}"),
        })
        .collect();
    let rules = Rules {
        images: RetentionPolicy {
            untagged_age_ms: 7 * DAY,
            max_delete_share: 1.0,
            delete_orphan_referrers: false,
            force: true,
        },
        releases: ReleasePolicy {
            keep_releases: Some(100),
            keep_days: Some(90),
            protect: vec![TagPattern::new("v1.*")],
            attempt_days: Some(30),
            max_expire_share: 1.0,
            force: true,
        },
    };
    let refs: Vec<&Release> = releases.iter().collect();
    let in_flight = HashSet::new();

    let cpu_before = cpu_time();
    let mut times = Vec::with_capacity(RUNS);
    let mut last = None;
    for _ in 0..RUNS {
        drop(last.take());
        let started = Instant::now();
        let planned = plan_survey("app", &images, &refs, &in_flight, &uses, &rules, NOW);
        times.push(started.elapsed());
        last = Some(std::hint::black_box(planned));
    }
    let cpu = cpu_before
        .zip(cpu_time())
        .map(|(a, b)| (b - a) / RUNS as u32);
    let planned = last.expect("at least one run");
    times.sort();
    let (best, median) = (times[0], times[RUNS / 2]);
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1e3);

    println!(
        "## Release planner ({RELEASES} releases, {} images, one repository)",
        images.len()
    );
    println!();
    println!("| | |");
    println!("|---|---|");
    println!("| plan (release plan + image plan), best | {} |", ms(best));
    println!("| plan, median of {RUNS} | {} |", ms(median));
    if let Some(cpu) = cpu {
        println!(
            "| CPU per plan (user + system, /proc) | {} ({}) |",
            ms(cpu),
            if cpu < BUDGET {
                "within the 1 s budget"
            } else {
                "OVER BUDGET"
            }
        );
    }
    println!(
        "| releases expired / kept | {} / {} |",
        planned.releases.expiring().count(),
        planned.releases.releases.len() - planned.releases.expiring().count()
    );
    println!(
        "| kept by rule | {} |",
        planned
            .releases
            .kept_by_rule()
            .iter()
            .map(|(rule, n)| format!("{rule} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "| images deleted / kept | {} / {} |",
        planned.images.delete.len(),
        planned.images.keep.len()
    );
    println!(
        "| deletion waves | {} |",
        planned
            .images
            .delete
            .iter()
            .map(|d| d.wave)
            .max()
            .map_or(0, |w| w + 1)
    );
    assert!(median < BUDGET, "planning took {median:?}, over the budget");
}
