//! Release-level retention as a specification: the tombstone in the state machine, the rules
//! of the release planner, and properties over generated repositories and policies (no kept
//! release loses an image, no image in use is deleted, listing order changes nothing).

use archgate::domain::gate::{SeverityCounts, Verdict};
use archgate::domain::notice::RejectReason;
use archgate::domain::release::{
    Candidate, CandidateChild, EffectResult, EventKind, ExpiryRule, Publication, ScanRecord,
};
use archgate::domain::retention::{
    Fate, ImageRecord, ImageUse, KeepReason, ManifestLinks, ReleasePolicy, RetentionPolicy,
    TagPattern,
};
use archgate::domain::{
    decide, Arch, BuildStatus, Decision, Digest, Effect, Fact, ManifestMode, Millis, Phase,
    Release, ReleaseKey, ReleaseTag, SourceObject,
};
use archgate::retention::{plan_survey, Planned, Rules};
use proptest::prelude::*;
use std::collections::{BTreeSet, HashSet};

const REPO: &str = "myapp";
const DAY: Millis = 24 * 3600 * 1000;
const NOW: Millis = 1_800_000_000_000;

// ---------------------------------------------------------------------------------------
// The tombstone in the state machine
// ---------------------------------------------------------------------------------------

#[test]
fn an_expired_published_release_refuses_every_later_upload_of_its_name() {
    // Given a published release at rest
    let release = published("v1", 0, 90);
    // When retention expires it
    let expired = apply(&release, &superseded(), NOW);
    // Then it is a tombstone that asks for one Release Expired
    assert_eq!(expired.phase(), Phase::Expired);
    assert!(expired.is_tombstone());
    assert_eq!(
        expired.required_effects(),
        vec![Effect::Emit(EventKind::Expired)]
    );
    // And a new version of its object is refused with the rule `expired`
    let mut later = expired.source.clone();
    later.version_id = Some("v-next".into());
    later.sequencer = Some("FFFF".into());
    let refused = apply(
        &expired,
        &Fact::SourceUploaded {
            source: later,
            manifest_mode: ManifestMode::Native,
        },
        NOW + DAY,
    );
    assert_eq!(refused.phase(), Phase::Expired);
    let notice = refused.notices.last().expect("a Release Rejected notice");
    match &notice.kind {
        archgate::domain::notice::NoticeKind::Rejected { reason, .. } => {
            assert!(matches!(reason, RejectReason::Expired { attempt: 1, .. }));
            assert_eq!(reason.slug(), "expired");
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[test]
fn release_expired_is_announced_once_and_a_repeated_expiry_is_a_duplicate() {
    // Given an expired release whose event was announced
    let expired = apply(&published("v1", 0, 90), &superseded(), NOW);
    let announced = apply(
        &expired,
        &Fact::Completed(EffectResult::Emitted {
            kind: EventKind::Expired,
        }),
        NOW,
    );
    assert!(announced.required_effects().is_empty());
    // When retention expires it again (a second run, a redelivery)
    let again = decide(Some(&announced), &announced.key, &superseded(), NOW + DAY);
    // Then nothing changes
    match again {
        Decision::Ignore(reason) => assert_eq!(reason.kind(), "already_expired"),
        other => panic!("expected a duplicate, got {other:?}"),
    }
}

#[test]
fn a_release_with_work_under_way_or_in_flight_does_not_expire() {
    // Given a published release whose Release Published was never announced
    let mut busy = published("v1", 0, 90);
    busy.emitted.retain(|k| *k != EventKind::Published);
    // When retention expires it, then the state machine refuses and writes nothing expired
    match decide(Some(&busy), &busy.key, &superseded(), NOW) {
        Decision::Apply { next, .. } => assert_ne!(next.phase(), Phase::Expired),
        Decision::Ignore(reason) => assert_eq!(reason.kind(), "release_busy"),
    }
    // And a release still building is never expired by any rule
    let building = Release::new(key("v2"), source("v2", 0), ManifestMode::Native, NOW);
    for rule in [superseded(), stale()] {
        match decide(Some(&building), &building.key, &rule, NOW) {
            Decision::Apply { next, .. } => assert_ne!(next.phase(), Phase::Expired),
            Decision::Ignore(_) => {}
        }
    }
}

#[test]
fn an_expired_attempt_can_be_built_again_and_its_scans_no_longer_count() {
    // Given a blocked release whose attempt went stale and expired
    let blocked = blocked("rc1", 0, 40);
    let expired = apply(&blocked, &stale(), NOW);
    let expired = apply(
        &expired,
        &Fact::Completed(EffectResult::Emitted {
            kind: EventKind::Expired,
        }),
        NOW,
    );
    assert_eq!(expired.phase(), Phase::Expired);
    assert!(!expired.is_tombstone(), "never published: the name is free");
    // When a scan arrives for it, then it is ignored
    let scan = Fact::ScanEvaluated(ScanRecord {
        arch: Arch::Amd64,
        digest: digest("rc1-amd64"),
        verdict: pass(),
        scanned_at: NOW,
        evaluated_at: NOW,
        scanner: None,
        policy_version: None,
    });
    match decide(Some(&expired), &expired.key, &scan, NOW) {
        Decision::Ignore(reason) => assert_eq!(reason.kind(), "release_expired"),
        other => panic!("expected the scan to be ignored, got {other:?}"),
    }
    // And a new version of its object starts the next attempt
    let mut later = expired.source.clone();
    later.version_id = Some("v-next".into());
    later.sequencer = Some("FFFF".into());
    let next = apply(
        &expired,
        &Fact::SourceUploaded {
            source: later,
            manifest_mode: ManifestMode::Native,
        },
        NOW + DAY,
    );
    assert_eq!(next.attempt, 2);
    assert_eq!(next.phase(), Phase::Building);
    assert_eq!(next.history.last().map(|h| h.outcome), Some(Phase::Expired));
}

// ---------------------------------------------------------------------------------------
// The rules of the release planner
// ---------------------------------------------------------------------------------------

#[test]
fn each_rule_keeps_what_it_names_and_the_rest_expires() {
    // Given eight published releases, one a day, v1 the oldest, `latest` on v8
    let mut repo = Repo::default();
    for n in 1..=8 {
        repo.published(&format!("v{n}"), n, 20 - n as i64);
    }
    repo.tag(&index_of("v8"), "latest");
    // And a protected LTS and one release a Lambda function uses
    repo.published("lts-1", 20, 30);
    repo.published("v0", 21, 60);
    let uses = [ImageUse {
        image: format!(
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com/{REPO}@{}",
            index_of("v0")
        ),
        resolved: None,
        user: "lambda function api".into(),
    }];
    // When the newest 3 are kept, releases younger than 16 days, and `lts-*`
    let policy = ReleasePolicy {
        keep_releases: Some(3),
        keep_days: Some(16),
        protect: vec![TagPattern::new("lts-*")],
        ..forced()
    };
    let planned = repo.plan(&policy, &uses);
    // Then each release has the rule that decided it
    let fate = |tag: &str| fate_of(&planned, tag);
    assert_eq!(fate("v8"), "named_by"); // `latest`
    assert_eq!(fate("v7"), "newest");
    assert_eq!(fate("v6"), "newest");
    assert_eq!(fate("v5"), "young"); // published 15 days ago
    assert_eq!(fate("lts-1"), "protected");
    assert_eq!(fate("v0"), "in_use");
    for old in ["v1", "v2", "v3", "v4"] {
        assert_eq!(fate(old), "superseded", "{old}");
    }
    // And every image of an expired release goes, none of a kept one
    assert_release_images(&repo, &planned);
}

#[test]
fn nothing_set_expires_no_release_and_keeps_todays_untagged_cleanup() {
    // Given published, blocked and failed releases and an old untagged image
    let mut repo = Repo::default();
    repo.published("v1", 1, 400);
    repo.blocked("v2", 2, 300);
    repo.failed("v3", 3, 300);
    repo.untagged("stray", 30);
    // When the default policy plans
    let planned = repo.plan(&ReleasePolicy::default(), &[]);
    // Then no release expires and only the stray image goes
    assert!(planned.releases.expiring().next().is_none());
    let deleted: Vec<&Digest> = planned.images.delete.iter().map(|d| &d.digest).collect();
    assert_eq!(deleted, vec![&digest("stray")]);
}

#[test]
fn a_shared_child_stays_with_the_kept_release_and_leaves_with_the_last() {
    // Given two releases whose amd64 images are byte-identical
    let mut repo = Repo::default();
    repo.published("v1", 1, 100);
    repo.published_sharing("v2", 2, 50, "v1");
    // When v1 expires and v2 is kept
    let planned = repo.plan(
        &ReleasePolicy {
            keep_releases: Some(1),
            ..forced()
        },
        &[],
    );
    assert_eq!(fate_of(&planned, "v1"), "superseded");
    // Then v1's index and own arm64 image go; the shared amd64 image stays
    let deleted: HashSet<&Digest> = planned.images.delete.iter().map(|d| &d.digest).collect();
    assert!(deleted.contains(&digest("v1-index")));
    assert!(deleted.contains(&digest("v1-arm64")));
    assert!(!deleted.contains(&digest("v1-amd64")));
    assert_release_images(&repo, &planned);
}

#[test]
fn referrers_and_signatures_leave_before_their_subject() {
    // Given an old release with an OCI referrer and a cosign-style signature of its index
    let mut repo = Repo::default();
    repo.published("v1", 1, 100);
    repo.published("v2", 2, 10);
    repo.referrer("v1-sbom", &digest("v1-index"));
    repo.signature("v1-sig", &digest("v1-index"));
    // When v1 expires
    let planned = repo.plan(
        &ReleasePolicy {
            keep_releases: Some(1),
            ..forced()
        },
        &[],
    );
    // Then referrer and signature go in an earlier wave than the index, the index in an
    // earlier wave than its children
    let wave = |name: &str| {
        planned
            .images
            .delete
            .iter()
            .find(|d| d.digest == digest(name))
            .unwrap_or_else(|| panic!("{name} is not deleted"))
            .wave
    };
    assert!(wave("v1-sbom") < wave("v1-index"));
    assert!(wave("v1-sig") < wave("v1-index"));
    assert!(wave("v1-index") < wave("v1-amd64"));
}

#[test]
fn the_safety_valve_refuses_a_plan_that_expires_too_many_releases() {
    let mut repo = Repo::default();
    for n in 1..=10 {
        repo.published(&format!("v{n}"), n, 100 - n as i64);
    }
    let policy = ReleasePolicy {
        keep_releases: Some(2),
        max_expire_share: 0.5,
        force: false,
        ..ReleasePolicy::default()
    };
    let planned = repo.plan(&policy, &[]);
    assert!(planned.releases.refused.is_some());
    assert!(planned.releases.expiring().next().is_none());
    assert_eq!(
        planned.releases.kept_by_rule().get("safety_valve"),
        Some(&8)
    );
}

// ---------------------------------------------------------------------------------------
// Properties over generated repositories and policies
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Kind {
    Published { age_days: i64 },
    Blocked { age_days: i64 },
    Failed { age_days: i64 },
    Building,
    Expired,
}

#[derive(Debug, Clone)]
struct GenRelease {
    kind: Kind,
    /// Shares its amd64 image with an earlier release.
    shares_with: Option<usize>,
    referrer: bool,
    signed: bool,
}

fn gen_release() -> impl Strategy<Value = GenRelease> {
    let kind = prop_oneof![
        6 => (0i64..400).prop_map(|age_days| Kind::Published { age_days }),
        1 => (0i64..100).prop_map(|age_days| Kind::Blocked { age_days }),
        1 => (0i64..100).prop_map(|age_days| Kind::Failed { age_days }),
        1 => Just(Kind::Building),
        1 => Just(Kind::Expired),
    ];
    (
        kind,
        prop::option::of(0usize..40),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(kind, shares_with, referrer, signed)| GenRelease {
            kind,
            shares_with,
            referrer,
            signed,
        })
}

fn gen_policy() -> impl Strategy<Value = ReleasePolicy> {
    (
        prop::option::of(1u32..6),
        prop::option::of(1u32..200),
        prop::option::of(prop_oneof![Just("v1*"), Just("*-lts"), Just("v*3")]),
        prop::option::of(1u32..60),
        any::<bool>(),
    )
        .prop_map(
            |(keep_releases, keep_days, protect, attempt_days, force)| ReleasePolicy {
                keep_releases,
                keep_days,
                protect: protect.into_iter().map(TagPattern::new).collect(),
                attempt_days,
                max_expire_share: 0.5,
                force,
            },
        )
}

fn build_repo(releases: &[GenRelease], latest: Option<usize>, stray: usize) -> Repo {
    let mut repo = Repo::default();
    for (n, spec) in releases.iter().enumerate() {
        let tag = if n % 7 == 3 {
            format!("v{n}-lts")
        } else {
            format!("v{n}")
        };
        let order = n as u32;
        match (&spec.kind, spec.shares_with.filter(|s| *s < n)) {
            (Kind::Published { age_days }, Some(other)) => {
                let other_tag = repo.tags[other].clone();
                repo.published_sharing(&tag, order, *age_days, &other_tag)
            }
            (Kind::Published { age_days }, None) => repo.published(&tag, order, *age_days),
            (Kind::Blocked { age_days }, _) => repo.blocked(&tag, order, *age_days),
            (Kind::Failed { age_days }, _) => repo.failed(&tag, order, *age_days),
            (Kind::Building, _) => repo.building(&tag, order),
            (Kind::Expired, _) => repo.expired(&tag, order),
        }
        if repo.has(&format!("{tag}-index")) {
            if spec.referrer {
                repo.referrer(&format!("{tag}-sbom"), &digest(&format!("{tag}-index")));
            }
            if spec.signed {
                repo.signature(&format!("{tag}-sig"), &digest(&format!("{tag}-index")));
            }
        }
    }
    if let Some(at) = latest {
        if let Some(tag) = repo.tags.get(at % repo.tags.len().max(1)).cloned() {
            if repo.has(&format!("{tag}-index")) {
                repo.tag(&digest(&format!("{tag}-index")), "latest");
            }
        }
    }
    for n in 0..stray {
        repo.untagged(&format!("stray-{n}"), (n as i64) * 5);
    }
    repo
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn no_kept_release_loses_an_image_and_no_image_in_use_is_deleted(
        releases in prop::collection::vec(gen_release(), 0..30),
        policy in gen_policy(),
        latest in prop::option::of(0usize..30),
        used in prop::collection::vec((0usize..30, any::<bool>()), 0..4),
        stray in 0usize..5,
    ) {
        let repo = build_repo(&releases, latest, stray);
        // Workloads name some releases: by tag or by the digest of a child.
        let uses: Vec<ImageUse> = used
            .iter()
            .filter_map(|(at, by_tag)| {
                let tag = repo.tags.get(at % repo.tags.len().max(1))?;
                let image = if *by_tag {
                    format!("registry.example/{REPO}:{tag}")
                } else {
                    format!("{REPO}@{}", digest(&format!("{tag}-arm64")))
                };
                Some(ImageUse { image, resolved: None, user: format!("task {at}") })
            })
            .collect();
        let planned = repo.plan(&policy, &uses);
        let deleted: HashSet<&Digest> = planned.images.delete.iter().map(|d| &d.digest).collect();

        // No kept release loses an image.
        assert_release_images(&repo, &planned);
        // No image in use is deleted.
        for used in planned.in_use.keys() {
            prop_assert!(!deleted.contains(used), "in-use image {used} deleted");
        }
        // Releases in flight keep everything.
        for release in &planned.releases.releases {
            if release.phase.is_in_flight() {
                prop_assert!(!release.expires());
            }
        }
        // An index goes in an earlier wave than each of its children, a referrer earlier
        // than its subject.
        let wave_of: std::collections::HashMap<&Digest, u32> =
            planned.images.delete.iter().map(|d| (&d.digest, d.wave)).collect();
        for image in &repo.images {
            let Some(&wave) = wave_of.get(&image.digest) else { continue };
            let after: Vec<&Digest> = match &image.links {
                ManifestLinks::Index { children } => children.iter().collect(),
                ManifestLinks::Manifest { subject: Some(s) } => vec![s],
                _ => vec![],
            };
            for other in after {
                if let Some(&later) = wave_of.get(other) {
                    prop_assert!(wave < later, "{} wave {wave} not before {other} wave {later}", image.digest);
                }
            }
        }
    }

    #[test]
    fn the_plans_do_not_depend_on_listing_order(
        releases in prop::collection::vec(gen_release(), 0..25),
        policy in gen_policy(),
        latest in prop::option::of(0usize..25),
        seed in any::<u64>(),
    ) {
        let repo = build_repo(&releases, latest, 2);
        let planned = repo.plan(&policy, &[]);
        let mut shuffled = repo.clone();
        shuffle(&mut shuffled.images, seed);
        shuffle(&mut shuffled.releases, seed.rotate_left(17));
        for image in &mut shuffled.images {
            image.tags.reverse();
        }
        let again = shuffled.plan(&policy, &[]);
        prop_assert_eq!(&planned.images.delete, &again.images.delete);
        prop_assert_eq!(&planned.releases, &again.releases);
    }
}

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

fn shuffle<T>(items: &mut [T], seed: u64) {
    let mut state = seed | 1;
    for at in (1..items.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        items.swap(at, (state % (at as u64 + 1)) as usize);
    }
}

/// Every image a kept release holds survives; every image only an expiring release holds
/// goes (when the image plan was not refused).
fn assert_release_images(repo: &Repo, planned: &Planned) {
    let deleted: HashSet<&Digest> = planned.images.delete.iter().map(|d| &d.digest).collect();
    let mut kept_images: BTreeSet<Digest> = BTreeSet::new();
    for verdict in &planned.releases.releases {
        let release = repo
            .releases
            .iter()
            .find(|r| r.key.tag.as_str() == verdict.tag)
            .expect("every verdict is a release");
        let own = repo.images_of(release);
        if let Fate::Keep(_) = verdict.fate {
            for image in &own {
                assert!(
                    !deleted.contains(image),
                    "kept release {} ({:?}) loses {image}",
                    verdict.tag,
                    verdict.fate
                );
                kept_images.insert(image.clone());
            }
        }
    }
    if planned.images.refused.is_some() {
        return;
    }
    // What an expiring release holds goes, unless something kept reaches it: never for
    // being young or in flight.
    for verdict in planned.releases.expiring() {
        for image in &verdict.digests {
            if let Some(reason) = planned
                .images
                .keep
                .get(image)
                .filter(|_| !kept_images.contains(image))
            {
                assert!(
                    !matches!(reason, KeepReason::Young | KeepReason::InFlight),
                    "expired release {} keeps {image}: {reason:?}",
                    verdict.tag,
                );
            }
            if !kept_images.contains(image) && !repo.is_tagged_by_others(image, &verdict.tags) {
                let reason = planned.images.keep.get(image);
                assert!(
                    deleted.contains(image)
                        || matches!(
                            reason,
                            Some(
                                KeepReason::ChildOf(_)
                                    | KeepReason::ReferrerOf(_)
                                    | KeepReason::InUse(_)
                            )
                        ),
                    "expired release {} keeps {image}: {reason:?}",
                    verdict.tag,
                );
            }
        }
    }
}

fn fate_of(planned: &Planned, tag: &str) -> &'static str {
    let verdict = planned
        .releases
        .releases
        .iter()
        .find(|r| r.tag == tag)
        .unwrap_or_else(|| panic!("no verdict for {tag}"));
    match &verdict.fate {
        Fate::Keep(keep) => keep.name(),
        Fate::Expire { rule, .. } => rule.name(),
    }
}

fn forced() -> ReleasePolicy {
    ReleasePolicy {
        max_expire_share: 1.0,
        force: true,
        ..ReleasePolicy::default()
    }
}

fn superseded() -> Fact {
    Fact::Expire {
        rule: ExpiryRule::Superseded {
            keep_releases: Some(3),
            keep_days: None,
        },
    }
}

fn stale() -> Fact {
    Fact::Expire {
        rule: ExpiryRule::StaleAttempt { days: 30 },
    }
}

fn apply(release: &Release, fact: &Fact, now: Millis) -> Release {
    match decide(Some(release), &release.key, fact, now) {
        Decision::Apply { next, .. } => *next,
        Decision::Ignore(reason) => panic!("{fact:?} ignored: {reason}"),
    }
}

fn digest(name: &str) -> Digest {
    Digest::of(name.as_bytes())
}

fn index_of(tag: &str) -> Digest {
    digest(&format!("{tag}-index"))
}

fn key(tag: &str) -> ReleaseKey {
    ReleaseKey::new(REPO, ReleaseTag::parse(tag).expect("a valid tag"))
}

fn source(tag: &str, order: u32) -> SourceObject {
    SourceObject {
        bucket: "sources".into(),
        key: format!("releases/{tag}.zip"),
        version_id: Some(format!("v-{tag}")),
        etag: None,
        size: None,
        uploaded_at: Some(NOW - 500 * DAY + Millis::from(order) * 1000),
        sequencer: Some(format!("{order:08X}")),
    }
}

fn pass() -> Verdict {
    Verdict::Pass {
        counts: SeverityCounts::default(),
        allowlisted: vec![],
    }
}

/// A release at rest in `phase`-shaped state: builds done, candidate assembled, every
/// event it owes already announced.
fn at_rest(tag: &str, order: u32, started_days_ago: i64, amd64: Digest) -> Release {
    let started = NOW - started_days_ago * DAY;
    let mut release = Release::new(key(tag), source(tag, order), ManifestMode::Native, started);
    let k = ReleaseTag::parse(tag).unwrap();
    for (arch, image) in [
        (Arch::Amd64, amd64),
        (Arch::Arm64, digest(&format!("{tag}-arm64"))),
    ] {
        let build = match arch {
            Arch::Amd64 => &mut release.amd64,
            Arch::Arm64 => &mut release.arm64,
        };
        build.build_id = Some(format!("{tag}-{arch}:1"));
        build.status = Some(BuildStatus::Succeeded);
        build.finished_at = Some(started);
        build.image_digest = Some(image);
    }
    release.candidate = Some(Candidate {
        tag: k.candidate_tag(),
        digest: index_of(tag),
        children: vec![
            CandidateChild {
                arch: Arch::Amd64,
                digest: release.amd64.image_digest.clone().unwrap(),
            },
            CandidateChild {
                arch: Arch::Arm64,
                digest: release.arm64.image_digest.clone().unwrap(),
            },
        ],
        manifest: None,
        media_type: None,
    });
    release
}

fn settle(mut release: Release) -> Release {
    // Mark every event the state asks for as announced: the release is at rest.
    for _ in 0..8 {
        let owed: Vec<EventKind> = release
            .required_effects()
            .into_iter()
            .filter_map(|e| match e {
                Effect::Emit(kind) => Some(kind),
                _ => None,
            })
            .collect();
        if owed.is_empty() {
            break;
        }
        release.emitted.extend(owed);
        release.emitted.sort();
        release.emitted.dedup();
    }
    release
}

fn published(tag: &str, order: u32, age_days: i64) -> Release {
    let mut release = at_rest(tag, order, age_days, digest(&format!("{tag}-amd64")));
    for child in release.candidate.clone().unwrap().children {
        release.scans.push(ScanRecord {
            arch: child.arch,
            digest: child.digest,
            verdict: pass(),
            scanned_at: NOW - age_days * DAY,
            evaluated_at: NOW - age_days * DAY,
            scanner: None,
            policy_version: None,
        });
    }
    release.published = Some(Publication {
        tags: vec![tag.to_owned()],
        at: NOW - age_days * DAY,
    });
    settle(release)
}

fn blocked(tag: &str, order: u32, age_days: i64) -> Release {
    let mut release = at_rest(tag, order, age_days, digest(&format!("{tag}-amd64")));
    release.scans.push(ScanRecord {
        arch: Arch::Amd64,
        digest: digest(&format!("{tag}-amd64")),
        verdict: Verdict::Block {
            rule: "CRITICAL 1 > 0".into(),
            counts: SeverityCounts::default(),
            worst: vec![],
        },
        scanned_at: NOW - age_days * DAY,
        evaluated_at: NOW - age_days * DAY,
        scanner: None,
        policy_version: None,
    });
    let release = settle(release);
    assert_eq!(release.phase(), Phase::Blocked);
    release
}

/// A repository: its releases in the ledger and its images in the registry.
#[derive(Debug, Clone, Default)]
struct Repo {
    releases: Vec<Release>,
    images: Vec<ImageRecord>,
    /// Release tags in creation order.
    tags: Vec<String>,
}

impl Repo {
    fn plan(&self, releases: &ReleasePolicy, uses: &[ImageUse]) -> Planned {
        let rules = Rules {
            images: RetentionPolicy {
                untagged_age_ms: 7 * DAY,
                max_delete_share: 1.0,
                delete_orphan_referrers: false,
                force: true,
            },
            releases: releases.clone(),
        };
        let in_flight: HashSet<Digest> = self
            .releases
            .iter()
            .filter(|r| r.phase().is_in_flight())
            .flat_map(|r| self.images_of(r))
            .collect();
        let refs: Vec<&Release> = self.releases.iter().collect();
        plan_survey(REPO, &self.images, &refs, &in_flight, uses, &rules, NOW)
    }

    fn has(&self, name: &str) -> bool {
        self.images.iter().any(|i| i.digest == digest(name))
    }

    fn image(&mut self, name: &str, tags: Vec<String>, age_days: i64, links: ManifestLinks) {
        let d = digest(name);
        if let Some(existing) = self.images.iter_mut().find(|i| i.digest == d) {
            existing.tags.extend(tags);
            return;
        }
        self.images.push(ImageRecord {
            digest: d,
            tags,
            pushed_at: NOW - age_days * DAY,
            media_type: None,
            size_bytes: Some(1000),
            links,
        });
    }

    fn tag(&mut self, image: &Digest, tag: &str) {
        for other in &mut self.images {
            other.tags.retain(|t| t != tag);
        }
        let found = self
            .images
            .iter_mut()
            .find(|i| &i.digest == image)
            .expect("image");
        found.tags.push(tag.to_owned());
    }

    fn push_release(&mut self, release: Release, index: bool, age_days: i64) {
        let tag = release.key.tag.clone();
        let amd64 = release.amd64.image_digest.clone().unwrap();
        let amd64_name = self
            .tags
            .iter()
            .map(|t| format!("{t}-amd64"))
            .chain([format!("{}-amd64", tag.as_str())])
            .find(|n| digest(n) == amd64)
            .unwrap();
        self.image(
            &amd64_name,
            vec![tag.arch_tag(Arch::Amd64)],
            age_days,
            ManifestLinks::NotRead,
        );
        let arm64 = format!("{}-arm64", tag.as_str());
        self.image(
            &arm64,
            vec![tag.arch_tag(Arch::Arm64)],
            age_days,
            ManifestLinks::NotRead,
        );
        if index {
            let mut tags = vec![tag.candidate_tag()];
            if release.published.is_some() {
                tags.push(tag.as_str().to_owned());
            }
            self.image(
                &format!("{}-index", tag.as_str()),
                tags,
                age_days,
                ManifestLinks::Index {
                    children: vec![amd64, digest(&arm64)],
                },
            );
        }
        self.tags.push(tag.as_str().to_owned());
        self.releases.push(release);
    }

    fn published(&mut self, tag: &str, order: u32, age_days: i64) {
        self.push_release(published(tag, order, age_days), true, age_days);
    }

    fn published_sharing(&mut self, tag: &str, order: u32, age_days: i64, with: &str) {
        let mut release = at_rest(tag, order, age_days, digest(&format!("{with}-amd64")));
        release.published = Some(Publication {
            tags: vec![tag.to_owned()],
            at: NOW - age_days * DAY,
        });
        for child in release.candidate.clone().unwrap().children {
            release.scans.push(ScanRecord {
                arch: child.arch,
                digest: child.digest,
                verdict: pass(),
                scanned_at: NOW,
                evaluated_at: NOW,
                scanner: None,
                policy_version: None,
            });
        }
        self.push_release(settle(release), true, age_days);
    }

    fn blocked(&mut self, tag: &str, order: u32, age_days: i64) {
        self.push_release(blocked(tag, order, age_days), true, age_days);
    }

    fn failed(&mut self, tag: &str, order: u32, age_days: i64) {
        let mut release = at_rest(tag, order, age_days, digest(&format!("{tag}-amd64")));
        release.candidate = None;
        release.arm64.status = Some(BuildStatus::Failed);
        let release = settle(release);
        assert_eq!(release.phase(), Phase::Failed);
        self.push_release(release, false, age_days);
    }

    fn building(&mut self, tag: &str, order: u32) {
        let mut release = at_rest(tag, order, 0, digest(&format!("{tag}-amd64")));
        release.candidate = None;
        release.arm64.status = None;
        release.arm64.image_digest = None;
        self.image(
            &format!("{tag}-amd64"),
            vec![ReleaseTag::parse(tag).unwrap().arch_tag(Arch::Amd64)],
            0,
            ManifestLinks::NotRead,
        );
        self.tags.push(tag.to_owned());
        self.releases.push(release);
    }

    fn expired(&mut self, tag: &str, order: u32) {
        let release = published(tag, order, 300);
        let expired = apply(&release, &superseded(), NOW - 10 * DAY);
        // Crashed before its images went: they are all still there.
        self.push_release(expired, true, 300);
    }

    fn untagged(&mut self, name: &str, age_days: i64) {
        self.image(name, vec![], age_days, ManifestLinks::NotRead);
    }

    fn referrer(&mut self, name: &str, subject: &Digest) {
        self.image(
            name,
            vec![],
            1,
            ManifestLinks::Manifest {
                subject: Some(subject.clone()),
            },
        );
    }

    fn signature(&mut self, name: &str, subject: &Digest) {
        let tag = format!("sha256-{}.sig", &subject.as_str()["sha256:".len()..]);
        self.image(name, vec![tag], 1, ManifestLinks::NotRead);
    }

    /// The images a release's ledger record names.
    fn images_of(&self, release: &Release) -> Vec<Digest> {
        let mut images: Vec<Digest> = Vec::new();
        if let Some(c) = &release.candidate {
            images.push(c.digest.clone());
            images.extend(c.children.iter().map(|c| c.digest.clone()));
        }
        for build in [&release.amd64, &release.arm64] {
            images.extend(build.image_digest.clone());
        }
        images.retain(|d| self.images.iter().any(|i| &i.digest == d));
        images.sort();
        images.dedup();
        images
    }

    /// Whether `image` carries a tag that is not one of `own`.
    fn is_tagged_by_others(&self, image: &Digest, own: &[String]) -> bool {
        self.images
            .iter()
            .filter(|i| &i.digest == image)
            .any(|i| i.tags.iter().any(|t| !own.contains(t)))
    }
}

// ---------------------------------------------------------------------------------------
// Fail closed on workloads
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn when_workloads_cannot_be_read_nothing_is_deleted_and_the_report_says_why() {
    use archgate::operation::ECS_DESCRIBE_TASK_DEFINITION;
    use archgate::retention::{run, Request, Retention};
    use archgate_testkit::memory::{
        Chaos, Fault, ManualClock, Memory, MemoryServices, MemoryWorkloads,
    };
    // Given a repository with an old untagged image and a retention policy that expires
    let services = MemoryServices::new(Chaos::default(), ManualClock::at(NOW - 30 * DAY));
    services.registry.create_repository(REPO, false);
    let stray = archgate::domain::oci::RawManifest {
        media_type: Some(archgate::domain::oci::OCI_MANIFEST.to_owned()),
        bytes: br#"{"schemaVersion":2,"layers":[]}"#.to_vec(),
    };
    services.registry.push(REPO, None, stray);
    services.clock.set(NOW);
    let mut config = archgate::config::RetentionConfig::from_lookup(
        archgate::config::sample_lookup(&[(archgate::config::RETENTION_REPOSITORIES, REPO)]),
    )
    .expect("valid");
    config.releases.keep_releases = Some(1);
    // And workloads that cannot be read (ECS refuses the read)
    services
        .chaos
        .start_outage(ECS_DESCRIBE_TASK_DEFINITION, Fault::Denied);
    let retention: Retention<Memory> = Retention {
        config,
        inventory: services.registry.clone(),
        workloads: MemoryWorkloads::new(services.chaos.clone()),
        ledger: services.ledger.clone(),
        events: services.events.clone(),
        clock: services.clock.clone(),
    };
    // When retention runs
    let report = run(&retention, Request::default()).await;
    // Then nothing is deleted, and the repository's report says why
    let repository = &report.repositories[0];
    assert!(repository.deleted.is_empty());
    let error = repository.error.as_deref().unwrap_or_default();
    assert!(error.contains("workloads use could not be read"), "{error}");
    assert_eq!(services.registry.repository(REPO).images.len(), 1);
}
