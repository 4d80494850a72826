//! What happens to archgate in one schedule, drawn from its seed: which uploads arrive when
//! and to which repository (names that collide with each other, across repositories and with
//! the reserved names, keys naming no repository of archgate's, new versions of the same key,
//! byte-identical contents under different names and repositories), what each build context does
//! (fails on an arch, carries a critical finding), and which trouble the world adds.

use crate::rng::Rng;
use archgate::config::ReleaseRules;
use archgate::domain::oci::{RawManifest, OCI_MANIFEST};
use archgate::domain::retention::TagPattern;
use archgate::domain::{Arch, Millis};
use archgate_testkit::memory::FaultRates;

mod repositories;
pub use repositories::*;

/// 2026-01-01T00:00:00Z.
pub const T0: Millis = 1_767_225_600_000;
pub const MINUTE: Millis = 60_000;
pub const HOUR: Millis = 60 * MINUTE;
pub const DAY: Millis = 24 * HOUR;

/// A build context: its images are a function of it, so equal contents give byte-identical
/// images (shared digests) across releases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Content {
    pub id: u32,
    /// The build of this arch fails.
    pub fails_on: Option<Arch>,
    /// The image of this arch carries a critical finding.
    pub vulnerable_on: Option<Arch>,
}

pub const CONTENTS: [Content; 5] = [
    Content {
        id: 0,
        fails_on: None,
        vulnerable_on: None,
    },
    Content {
        id: 1,
        fails_on: None,
        vulnerable_on: None,
    },
    Content {
        id: 2,
        fails_on: None,
        vulnerable_on: Some(Arch::Amd64),
    },
    Content {
        id: 3,
        fails_on: Some(Arch::Arm64),
        vulnerable_on: None,
    },
    Content {
        id: 4,
        fails_on: None,
        vulnerable_on: Some(Arch::Arm64),
    },
];

/// The per-arch image a build of `content` pushes: an OCI image manifest whose bytes depend
/// only on the content and the arch.
pub fn image_manifest(content: u32, arch: Arch) -> RawManifest {
    let blob = |seed: String| {
        let digest = archgate::domain::Digest::of(seed.as_bytes());
        serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                           "digest": digest.to_string(), "size": 1024 + content})
    };
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": archgate::domain::Digest::of(format!("config {content} {arch}").as_bytes()).to_string(),
                   "size": 512},
        "layers": [blob(format!("layer {content} {arch}"))],
    });
    RawManifest {
        media_type: Some(OCI_MANIFEST.to_owned()),
        bytes: serde_json::to_vec(&manifest).expect("a manifest serialises"),
    }
}

/// A manifest someone else pushes under a release's arch tag.
pub fn foreign_manifest(n: u64) -> RawManifest {
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": archgate::domain::Digest::of(format!("foreign {n}").as_bytes()).to_string(),
                   "size": 512},
        "layers": [],
    });
    RawManifest {
        media_type: Some(OCI_MANIFEST.to_owned()),
        bytes: serde_json::to_vec(&manifest).expect("a manifest serialises"),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedUpload {
    pub at: Millis,
    pub key: String,
    pub content: Content,
}

/// A lasting fault: from `from` to `until` every try of one thing fails, whatever retries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outage {
    pub kind: OutageKind,
    pub from: Millis,
    pub until: Millis,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutageKind {
    /// CodeBuild throttles StartBuild (an account at its concurrent-build limit).
    StartBuildThrottled,
    /// StartBuild is refused (a permission removed from the role, a project deleted).
    StartBuildDenied,
    /// The signing key cannot sign (disabled, pending deletion, a grant revoked).
    SigningKeyUnusable,
    /// ECR refuses PutImage (a repository policy that denies archgate's role).
    PutImageDenied,
}

impl OutageKind {
    pub const ALL: [OutageKind; 4] = [
        OutageKind::StartBuildThrottled,
        OutageKind::StartBuildDenied,
        OutageKind::SigningKeyUnusable,
        OutageKind::PutImageDenied,
    ];
}

#[derive(Debug, Clone)]
pub struct Scenario {
    pub uploads: Vec<PlannedUpload>,
    pub faults: FaultRates,
    /// Pushes by someone else under a release's amd64 tag: when, and how many.
    pub flood: Option<(Millis, usize)>,
    /// A ledger item written by another version (does not parse), and when.
    pub damaged_item_at: Option<Millis>,
    /// Retention runs read with a per-image failure on a release's index.
    pub unreadable_reads: bool,
    /// Builds wait in CodeBuild's queue for hours before they push.
    pub slow_builds: bool,
    /// Percent of CodeBuild and scan events lost, and duplicated.
    pub lost_percent: u64,
    pub duplicate_percent: u64,
    /// Long gaps (days) the clock jumps after the uploads.
    pub months: Vec<Millis>,
    /// Release-level retention (nothing set in about half the schedules: today's default).
    pub release_rules: ReleaseRules,
    /// Workloads start using published releases now and then.
    pub workloads: bool,
    /// Lasting faults, each over a window of minutes to hours.
    pub outages: Vec<Outage>,
    /// Someone deletes a per-arch image by hand now and then, before its index exists.
    pub vanishing_images: bool,
    /// StopBuild takes effect late: a stopped build may still report SUCCEEDED.
    pub late_stops: bool,
    /// EventBridge delivers build events of earlier attempts again, hours late.
    pub echoes: bool,
    /// New versions of failed or blocked releases' keys arrive while a retention run is
    /// under way (which may expire the attempt they build again).
    pub uploads_during_retention: bool,
}

impl Scenario {
    pub fn draw(rng: &mut Rng, max_uploads: usize) -> Scenario {
        let count = rng.between(1, max_uploads.max(1) as i64) as usize;
        let mut at = T0;
        let mut uploads = Vec::with_capacity(count);
        for _ in 0..count {
            let roll = rng.below(100);
            let repository = pick_repository(rng);
            let key = if roll < 62 {
                key(repository, rng.pick::<&str>(&ORDINARY))
            } else if roll < 80 {
                key(repository, rng.pick::<&str>(&RESERVED))
            } else if roll < 93 {
                key(repository, rng.pick::<&str>(&TAKEN))
            } else {
                (*rng.pick(&REFUSED)).to_owned()
            };
            uploads.push(PlannedUpload {
                at,
                key,
                content: *rng.pick(&CONTENTS),
            });
            at += if rng.chance(10) {
                let gap = rng.between(DAY, 20 * DAY);
                // Now and then right as the daily retention run starts, which may expire the
                // attempt this upload builds again.
                if rng.chance(30) {
                    gap - (at + gap - T0) % DAY + rng.between(0, MINUTE)
                } else {
                    gap
                }
            } else {
                rng.between(MINUTE, 6 * HOUR)
            };
        }
        let faults = if rng.chance(50) {
            FaultRates::default()
        } else {
            FaultRates {
                throttle: rng.below(150) as u32,
                server_error: rng.below(150) as u32,
                lost_answer: rng.below(150) as u32,
                crash_before: rng.below(80) as u32,
                crash_after: rng.below(80) as u32,
            }
        };
        let end = at;
        let outages = if rng.chance(40) {
            (0..rng.between(1, 2))
                .map(|_| {
                    let kind = *rng.pick(&OutageKind::ALL);
                    // Around an upload, a new version of a key when there is one: where a
                    // fault at an attempt's start hurts.
                    let again: Vec<Millis> = uploads
                        .iter()
                        .enumerate()
                        .filter(|(n, u)| uploads[..*n].iter().any(|e| e.key == u.key))
                        .map(|(_, u)| u.at)
                        .collect();
                    let around = if again.is_empty() {
                        rng.pick(&uploads).at
                    } else {
                        *rng.pick(&again)
                    };
                    let from = around + rng.between(-30 * MINUTE, 30 * MINUTE);
                    let length = match kind {
                        OutageKind::StartBuildThrottled => rng.between(MINUTE, 2 * HOUR),
                        _ => rng.between(HOUR, 12 * HOUR),
                    };
                    Outage {
                        kind,
                        from,
                        until: from + length,
                    }
                })
                .collect()
        } else {
            Vec::new()
        };
        Scenario {
            uploads,
            faults,
            flood: rng
                .chance(10)
                .then(|| (rng.between(T0, end), rng.between(300, 400) as usize)),
            damaged_item_at: rng.chance(25).then(|| rng.between(T0, end)),
            slow_builds: rng.chance(20),
            unreadable_reads: rng.chance(30),
            lost_percent: rng.below(8),
            duplicate_percent: rng.below(30),
            months: (0..rng.below(4))
                .map(|_| rng.between(DAY, 120 * DAY))
                .collect(),
            release_rules: if rng.chance(50) {
                ReleaseRules {
                    keep_releases: rng.chance(70).then(|| rng.between(1, 3) as u32),
                    keep_days: rng.chance(50).then(|| rng.between(1, 30) as u32),
                    protect: if rng.chance(30) {
                        vec![TagPattern::new("app-1.*")]
                    } else {
                        Vec::new()
                    },
                    attempt_days: rng.chance(50).then(|| rng.between(1, 10) as u32),
                }
            } else {
                ReleaseRules::default()
            },
            workloads: rng.chance(50),
            outages,
            vanishing_images: rng.chance(10),
            late_stops: rng.chance(30),
            echoes: rng.chance(40),
            uploads_during_retention: rng.chance(25),
        }
    }
}
