//! Release-level retention on the emulator, in eu-west-1: a repository with dozens of
//! published releases (signed, attested, sharing a child, named by a hand-made or a moving
//! tag, run by ECS and Lambda), blocked and failed attempts and a release in flight, planned
//! and applied with each rule alone and all combined, through the plan/apply steps and
//! through the retention function.
//!
//! Where moto falls short of the real services:
//! - moto's Lambda checks no image URI against its ECR and reports as `ResolvedImageUri` a
//!   digest of the URI string (unless its server runs with `MOTO_LAMBDA_STUB_ECR=false`,
//!   which the installation's emulator does not): the function here names its image by
//!   digest, which archgate reads from the URI itself.
//! - moto's Lambda refuses an execution role its IAM does not hold, so the role is created
//!   with a raw IAM Query API call (archgate has no IAM client).
//! - moto's ECR holds a layer only once its blob is uploaded, and the local builder pushes
//!   manifests without blobs: "pulls on both platforms" checks the tag, the index and each
//!   platform's image manifest by digest, not BatchCheckLayerAvailability.
//! - moto's ECS never reports a running task's `imageDigest`: workloads here are a task
//!   definition naming a tag and a function naming a digest.
//! - moto's ECR stamps `imagePushedAt` in whole seconds, so a test that relies on pushes
//!   coming after an upload waits for the next second.

use archgate::aws::{AwsWorkloads, DynamoLedger, EcrRegistry, EventBridgePublisher};
use archgate::config::{
    RETENTION_ATTEMPT_DAYS, RETENTION_KEEP_RELEASES, RETENTION_MAX_DELETE_SHARE, RETENTION_PROTECT,
};
use archgate::domain::retention::{Fate, ReleaseKeep, ReleasePolicy, RetentionPolicy, TagPattern};
use archgate::domain::{Arch, Digest, Millis, Phase, Release};
use archgate::ports::{Clock, ImageUse, ShiftedClock, SystemClock, Workloads};
use archgate::retention::{
    apply_plan, survey_repository, RepositoryReport, Request, Rules, Survey, Targets,
};
use archgate_cli::local::LocalEnv;
use archgate_integration_tests::releases::*;
use archgate_integration_tests::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const REGION: &str = "eu-west-1";
const DAY: Millis = 24 * 3_600_000;
/// The safety valves' share in these plans: most of the repository may go.
const SHARE: f64 = 0.9;

// The repository of `Fixture::build`, oldest publication first.
const LTS: &str = "myapp-0.9-lts";
const OLD_PUBLISHED: [&str; 15] = [
    LTS,
    "myapp-1.01",
    SIGNED,
    CHILD_SIGNED,
    SHARING_OLD,
    "myapp-1.05",
    STABLE,
    RUN_BY_ECS,
    RUN_BY_LAMBDA,
    "myapp-1.09",
    "myapp-1.10",
    "myapp-1.11",
    "myapp-1.12",
    "myapp-1.13",
    "myapp-1.14",
];
const NEW_PUBLISHED: [&str; 12] = [
    "myapp-1.15",
    NEW_SIGNED,
    "myapp-1.17",
    "myapp-1.18",
    "myapp-1.19",
    SHARING_NEW,
    "myapp-1.21",
    "myapp-1.22",
    "myapp-1.23",
    "myapp-1.24",
    "myapp-1.25",
    LATEST,
];
/// An SBOM (OCI referrer), a cosign signature and a cosign attestation of its index.
const SIGNED: &str = "myapp-1.02";
/// A cosign signature of its amd64 image.
const CHILD_SIGNED: &str = "myapp-1.03";
/// These two releases' amd64 images are byte-identical: one image, shared.
const SHARING_OLD: &str = "myapp-1.04";
const SHARING_NEW: &str = "myapp-1.20";
/// Its index also carries the hand-made tag `stable`.
const STABLE: &str = "myapp-1.06";
/// An ECS task definition names it by tag.
const RUN_BY_ECS: &str = "myapp-1.07";
/// A Lambda function names its amd64 image by digest.
const RUN_BY_LAMBDA: &str = "myapp-1.08";
/// A new release with an SBOM and a signature of its index.
const NEW_SIGNED: &str = "myapp-1.16";
/// The newest release: the moving tag `latest` names it.
const LATEST: &str = "myapp-1.26";
const OLD_BLOCKED: &str = "myapp-2.0-beta";
const OLD_FAILED: &str = "myapp-2.0-alpha";
const NEW_BLOCKED: &str = "myapp-2.1-beta";
const IN_FLIGHT: &str = "myapp-3.0";

/// The verdicts no policy changes: named by another tag, used by a workload, in flight.
const STANDING: [(&[&str], &str); 3] = [
    (&[STABLE, LATEST], "named_by"),
    (&[RUN_BY_ECS, RUN_BY_LAMBDA], "in_use"),
    (&[IN_FLIGHT], "in_flight"),
];
const SUPERSEDED: &str = "expire superseded";
const STALE: &str = "expire stale_attempt";

#[tokio::test]
async fn every_rule_alone_and_combined_plans_its_verdicts_and_a_plan_touches_nothing() {
    // Given a repository with 27 published releases (15 published more than 30 days before
    // the plans' clock, 12 less), two old failed or blocked attempts, a recent blocked one and
    // a release in flight
    let fixture = Fixture::build().await;
    let now = fixture.days_after_boundary(30);

    // When each rule is planned alone
    let newest = fixture
        .plan(
            ReleasePolicy {
                keep_releases: Some(5),
                ..Default::default()
            },
            now,
        )
        .await;
    let young = fixture
        .plan(
            ReleasePolicy {
                keep_days: Some(30),
                ..Default::default()
            },
            now,
        )
        .await;
    let protected = fixture
        .plan(
            ReleasePolicy {
                protect: vec![TagPattern::new("*-lts")],
                ..Default::default()
            },
            now,
        )
        .await;
    let attempts = fixture
        .plan(
            ReleasePolicy {
                attempt_days: Some(30),
                ..Default::default()
            },
            now,
        )
        .await;

    // Then keep_releases keeps the newest 5 by publication (the newest is named by `latest`)
    assert_eq!(
        fates(&newest.survey),
        verdicts(&[
            (&OLD_PUBLISHED, SUPERSEDED),
            (&NEW_PUBLISHED, SUPERSEDED),
            (
                &["myapp-1.22", "myapp-1.23", "myapp-1.24", "myapp-1.25"],
                "newest"
            ),
            (&[OLD_BLOCKED, OLD_FAILED, NEW_BLOCKED], "no_rule"),
        ])
    );
    // keep_days keeps what was published less than 30 days ago
    assert_eq!(
        fates(&young.survey),
        verdicts(&[
            (&OLD_PUBLISHED, SUPERSEDED),
            (&NEW_PUBLISHED, "young"),
            (&[OLD_BLOCKED, OLD_FAILED, NEW_BLOCKED], "no_rule"),
        ])
    );
    // a protected pattern alone expires nothing: no rule expires published releases
    assert_eq!(
        fates(&protected.survey),
        verdicts(&[
            (&OLD_PUBLISHED, "no_rule"),
            (&NEW_PUBLISHED, "no_rule"),
            (&[LTS], "protected"),
            (&[OLD_BLOCKED, OLD_FAILED, NEW_BLOCKED], "no_rule"),
        ])
    );
    // attempt_days expires the attempts that started more than 30 days ago, no published one
    assert_eq!(
        fates(&attempts.survey),
        verdicts(&[
            (&OLD_PUBLISHED, "no_rule"),
            (&NEW_PUBLISHED, "no_rule"),
            (&[OLD_BLOCKED, OLD_FAILED], STALE),
            (&[NEW_BLOCKED], "recent_attempt"),
        ])
    );
    // and each plan's report counts what it would expire and keep, by rule
    assert_eq!(
        newest.report.releases_expired_by_rule,
        BTreeMap::from([("superseded", 19)])
    );
    assert_eq!(
        young.report.releases_kept_by_rule,
        BTreeMap::from([
            ("in_flight", 1),
            ("in_use", 2),
            ("named_by", 2),
            ("no_rule", 3),
            ("young", 11)
        ])
    );

    // When all rules are planned together
    let combined = fixture.plan(all_rules(), now).await;

    // Then a release stays when any rule keeps it
    assert_eq!(
        fates(&combined.survey),
        verdicts(&[
            (&OLD_PUBLISHED, SUPERSEDED),
            (&NEW_PUBLISHED, "newest"),
            (&["myapp-1.12", "myapp-1.13", "myapp-1.14"], "newest"),
            (&[LTS], "protected"),
            (&[OLD_BLOCKED, OLD_FAILED], STALE),
            (&[NEW_BLOCKED], "recent_attempt"),
        ])
    );
    // and the dry run lists each expiring release with the images that would go
    let listed: BTreeSet<&str> = combined
        .report
        .releases_expired
        .iter()
        .map(|r| r.tag.as_str())
        .collect();
    assert_eq!(listed, expiring(&combined.survey));
    let would_go: BTreeSet<&Digest> = combined.report.deleted.iter().collect();
    for digest in fixture.holdings(SIGNED) {
        assert!(would_go.contains(&digest), "{digest}");
    }

    // When a plan would expire more than the safety valve allows
    let refused = fixture
        .plan_with_share(
            ReleasePolicy {
                keep_releases: Some(1),
                ..Default::default()
            },
            0.5,
            now,
        )
        .await;

    // Then no release expires, and the report says why
    assert!(expiring(&refused.survey).is_empty());
    assert_eq!(
        refused.report.releases_kept_by_rule.get("safety_valve"),
        Some(&23)
    );
    assert!(
        refused
            .report
            .releases_refused
            .as_deref()
            .is_some_and(|r| r.contains("23 of 30")),
        "{:?}",
        refused.report.releases_refused
    );

    // And no plan deleted, tombstoned or announced anything
    assert_eq!(Inventory::read(&fixture.env).await, fixture.before);
    for (tag, release) in &fixture.releases {
        assert_eq!(record(&fixture.env, tag).await, *release, "{tag}");
    }
    assert!(release_events(&fixture.env).await.is_empty());
}

#[tokio::test]
async fn keep_releases_alone_expires_everything_older_than_the_newest_and_whole() {
    // Given the repository
    let fixture = Fixture::build().await;

    // When only the newest 5 releases are kept
    let Outcome { survey, report } = fixture
        .apply(
            ReleasePolicy {
                keep_releases: Some(5),
                ..Default::default()
            },
            fixture.days_after_boundary(30),
        )
        .await;

    // Then all others expire but those named by another tag or in use: both releases
    // sharing a child among them, so the child goes
    let expired = expiring(&survey);
    let kept = [
        LATEST,
        "myapp-1.25",
        "myapp-1.24",
        "myapp-1.23",
        "myapp-1.22",
        STABLE,
        RUN_BY_ECS,
        RUN_BY_LAMBDA,
    ];
    let expected: BTreeSet<&str> = OLD_PUBLISHED
        .into_iter()
        .chain(NEW_PUBLISHED)
        .filter(|t| !kept.contains(t))
        .collect();
    assert_eq!(expired, expected);
    assert!(expired.contains(SHARING_OLD) && expired.contains(SHARING_NEW));
    fixture.assert_applied(&report, &expired).await;
    assert!(!Inventory::read(&fixture.env)
        .await
        .holds(&fixture.shared_child()));

    // And a new upload of an expired release's file is refused: its name is spent
    fixture.assert_reupload_refused("myapp-1.21").await;
}

#[tokio::test]
async fn keep_days_alone_expires_the_old_and_a_child_shared_with_a_young_release_stays() {
    // Given the repository
    let fixture = Fixture::build().await;

    // When releases published in the last 30 days are kept
    let Outcome { survey, report } = fixture
        .apply(
            ReleasePolicy {
                keep_days: Some(30),
                ..Default::default()
            },
            fixture.days_after_boundary(30),
        )
        .await;

    // Then the 12 old ones not named by another tag nor in use expire
    let expired = expiring(&survey);
    let expected: BTreeSet<&str> = OLD_PUBLISHED
        .into_iter()
        .filter(|t| ![STABLE, RUN_BY_ECS, RUN_BY_LAMBDA].contains(t))
        .collect();
    assert_eq!(expired, expected);
    fixture.assert_applied(&report, &expired).await;

    // And the child the expired release shared with a young one stays, which still pulls
    let left = Inventory::read(&fixture.env).await;
    assert!(left.holds(&fixture.shared_child()));
    let (index, _) = index_of(&fixture.releases[SHARING_NEW]);
    pulls_on_both_platforms(&fixture.env, SHARING_NEW, &index)
        .await
        .unwrap();
    assert!(!left.tags.contains_key(SHARING_OLD));
}

#[tokio::test]
async fn attempt_days_alone_expires_only_stale_attempts_whose_names_stay_free() {
    // Given the repository
    let fixture = Fixture::build().await;

    // When blocked and failed attempts are kept for 30 days
    let Outcome { survey, report } = fixture
        .apply(
            ReleasePolicy {
                attempt_days: Some(30),
                ..Default::default()
            },
            fixture.days_after_boundary(30),
        )
        .await;

    // Then the two old attempts expire, with their images; every published release stays
    let expired = expiring(&survey);
    assert_eq!(expired, BTreeSet::from([OLD_BLOCKED, OLD_FAILED]));
    fixture.assert_applied(&report, &expired).await;
    assert_eq!(
        record(&fixture.env, OLD_FAILED)
            .await
            .expired
            .map(|e| e.phase),
        Some(Phase::Failed)
    );

    // And a new upload of an expired attempt's file starts the next attempt: only a
    // published release's name is spent
    release_events(&fixture.env).await;
    let answer = fixture
        .env
        .start_builds(upload(&fixture.env, &format!("releases/{OLD_FAILED}.zip")).await)
        .await;
    assert_eq!(answer["phase"], "building", "{answer}");
    let release = record(&fixture.env, OLD_FAILED).await;
    assert_eq!((release.phase(), release.attempt), (Phase::Building, 2));
    assert_eq!(release.history[0].outcome, Phase::Expired);
}

#[tokio::test]
async fn all_rules_combined_expire_what_no_rule_keeps_and_nothing_else() {
    // Given the repository
    let fixture = Fixture::build().await;

    // When every rule applies at once
    let Outcome { survey, report } = fixture
        .apply(all_rules(), fixture.days_after_boundary(30))
        .await;

    // Then the old releases no rule keeps expire, and the stale attempts
    let expired = expiring(&survey);
    assert_eq!(
        expired,
        BTreeSet::from([
            "myapp-1.01",
            SIGNED,
            CHILD_SIGNED,
            SHARING_OLD,
            "myapp-1.05",
            "myapp-1.09",
            "myapp-1.10",
            "myapp-1.11",
            OLD_BLOCKED,
            OLD_FAILED,
        ])
    );
    assert_eq!(
        report.releases_expired_by_rule,
        BTreeMap::from([("stale_attempt", 2), ("superseded", 8)])
    );
    fixture.assert_applied(&report, &expired).await;

    // And the signed release's SBOM, signature and attestation went with it, while the
    // kept signed release's stay
    let left = Inventory::read(&fixture.env).await;
    for artifact in &fixture.artifacts[SIGNED] {
        assert!(!left.holds(&artifact.digest), "{artifact:?}");
        if let Some(tag) = &artifact.tag {
            assert!(!left.tags.contains_key(tag), "{tag}");
        }
    }
    for artifact in &fixture.artifacts[NEW_SIGNED] {
        assert!(left.holds(&artifact.digest), "{artifact:?}");
        if let Some(tag) = &artifact.tag {
            assert_eq!(left.tags.get(tag), Some(&artifact.digest));
        }
    }
    assert!(left.holds(&fixture.shared_child()));

    // And a new upload of an expired release's file is refused
    fixture.assert_reupload_refused(SIGNED).await;
}

#[tokio::test]
async fn releases_that_workloads_run_are_kept_and_the_report_names_the_users() {
    // Given five published releases, an ECS task definition naming the oldest by tag and a
    // Lambda function naming the second's amd64 image by digest
    let env = installation_in(ManifestMode::Native, REGION).await;
    let mut releases = Vec::new();
    for tag in [
        "myapp-1.01",
        "myapp-1.02",
        "myapp-1.03",
        "myapp-1.04",
        "myapp-1.05",
    ] {
        releases.push(publish(&env, tag).await);
    }
    let by_tag = format!("{}:myapp-1.01", image_reference(&env));
    let task_definition = register_task_definition(&env, "web", &by_tag).await;
    let (index, children) = index_of(&releases[0]);
    let (_, lambda_children) = index_of(&releases[1]);
    let pinned = format!(
        "{}@{}",
        image_reference(&env),
        lambda_children[&Arch::Amd64]
    );
    let function = create_image_function(&env, "api", &pinned).await;

    // When retention keeps only the newest release
    let workloads = AwsWorkloads::new(env.clients.ecs(), env.clients.lambda());
    let uses = workloads.images_in_use().await.unwrap();
    let Outcome { survey, report } = Adapters::of(&env)
        .run(
            &env,
            &rules(ReleasePolicy {
                keep_releases: Some(1),
                ..Default::default()
            }),
            &uses,
            SystemClock.now_millis(),
            false,
        )
        .await;

    // Then both used releases are kept by `in_use`, each naming its user
    let ecs_user = format!("ecs task definition {task_definition}");
    let lambda_user = format!("lambda function {function}:$LATEST");
    let fate_of = |tag: &str| {
        survey
            .releases
            .releases
            .iter()
            .find(|r| r.tag == tag)
            .map(|r| r.fate.clone())
            .unwrap()
    };
    assert!(
        matches!(fate_of("myapp-1.01"), Fate::Keep(ReleaseKeep::InUse { user, .. }) if user == ecs_user),
        "{:?}",
        fate_of("myapp-1.01")
    );
    assert_eq!(
        fate_of("myapp-1.02"),
        Fate::Keep(ReleaseKeep::InUse {
            user: lambda_user.clone(),
            digest: lambda_children[&Arch::Amd64].clone(),
        })
    );
    assert_eq!(
        report.releases_kept_by_rule,
        BTreeMap::from([("in_use", 2), ("named_by", 1)])
    );
    assert_eq!(
        report.releases_expired_by_rule,
        BTreeMap::from([("superseded", 2)])
    );
    // and the report lists the images in use with their users: the task definition's index
    // and its children, the function's image
    let in_use: BTreeSet<(Digest, String)> = report.in_use.iter().cloned().collect();
    for digest in [&index, &children[&Arch::Amd64], &children[&Arch::Arm64]] {
        assert!(
            in_use.contains(&(digest.clone(), ecs_user.clone())),
            "{in_use:?}"
        );
    }
    assert!(
        in_use.contains(&(lambda_children[&Arch::Amd64].clone(), lambda_user.clone())),
        "{in_use:?}"
    );

    // And both still pull on both platforms, while the unused old ones are gone
    for release in &releases[..2] {
        let (index, _) = index_of(release);
        pulls_on_both_platforms(&env, release.key.tag.as_str(), &index)
            .await
            .unwrap();
    }
    for release in &releases[2..4] {
        let (index, _) = index_of(release);
        assert!(!Inventory::read(&env).await.holds(&index));
        assert_eq!(
            record(&env, release.key.tag.as_str()).await.phase(),
            Phase::Expired
        );
    }
}

#[tokio::test]
async fn the_retention_function_expires_releases_and_reports_them_by_rule() {
    // Given old releases (one protected, one run by an ECS task definition), two new ones,
    // an old blocked and an old failed attempt
    let env = installation_in(ManifestMode::Native, REGION).await;
    let old = [
        LTS,
        "myapp-1.01",
        "myapp-1.02",
        "myapp-1.03",
        "myapp-1.04",
        "myapp-1.05",
    ];
    for tag in old {
        publish(&env, tag).await;
    }
    block(&env, OLD_BLOCKED).await;
    fail(&env, OLD_FAILED).await;
    let boundary = boundary().await;
    publish(&env, "myapp-1.06").await;
    publish(&env, "myapp-1.07").await;
    let task_definition = register_task_definition(
        &env,
        "web",
        &format!("{}:myapp-1.03", image_reference(&env)),
    )
    .await;
    drain(&env).await;

    // When the retention function runs 30 days later keeping the newest 2 releases,
    // protecting `*-lts` and expiring attempts after 30 days: first as a dry run, then for real
    let config = env.retention_config(&[
        (RETENTION_KEEP_RELEASES, "2"),
        (RETENTION_PROTECT, "*-lts"),
        (RETENTION_ATTEMPT_DAYS, "30"),
        (RETENTION_MAX_DELETE_SHARE, "0.9"),
    ]);
    let retention = env.clients.retention_at(
        config,
        ShiftedClock {
            offset_ms: boundary + 30 * DAY - SystemClock.now_millis(),
        },
    );
    let dry = archgate::retention::run(
        &retention,
        Request {
            dry_run: true,
            ..Default::default()
        },
    )
    .await;
    let dry_events = release_events(&env).await;
    let real = archgate::retention::run(&retention, Request::default()).await;
    let real_events = release_events(&env).await;

    // Then each run publishes a Retention Report counting releases by rule
    let expired_by_rule = json!({"stale_attempt": 2, "superseded": 4});
    let kept_by_rule = json!({"in_use": 1, "named_by": 1, "newest": 1, "protected": 1});
    for (events, dry_run) in [(&dry_events, true), (&real_events, false)] {
        let reports = of_type(events, "Retention Report");
        assert_eq!(reports.len(), 1, "{events:?}");
        assert_eq!(reports[0]["dry-run"], dry_run);
        assert_eq!(reports[0]["releases-expired-by-rule"], expired_by_rule);
        assert_eq!(reports[0]["releases-kept-by-rule"], kept_by_rule);
    }
    assert_eq!(dry.repositories[0].releases_expired.len(), 6);
    // the dry run expired nothing; the real run expired six, each announced once
    assert!(of_type(&dry_events, "Release Expired").is_empty());
    let announced: Vec<&str> = of_type(&real_events, "Release Expired")
        .iter()
        .map(|e| e["tag"].as_str().unwrap())
        .collect();
    let expired = [
        "myapp-1.01",
        "myapp-1.02",
        "myapp-1.04",
        "myapp-1.05",
        OLD_BLOCKED,
        OLD_FAILED,
    ];
    assert_eq!(
        announced.iter().copied().collect::<BTreeSet<_>>(),
        BTreeSet::from(expired)
    );
    assert_eq!(announced.len(), expired.len());
    for event in of_type(&real_events, "Release Expired") {
        assert_eq!(event["state"], "expired");
        assert!(!event["reason"].as_str().unwrap_or_default().is_empty());
    }
    for tag in expired {
        assert_eq!(record(&env, tag).await.phase(), Phase::Expired, "{tag}");
        assert!(resolve(&env, tag).await.is_none(), "{tag}");
    }
    let report = &real.repositories[0];
    assert!(report.error.is_none(), "{report:?}");
    assert!(report
        .in_use
        .iter()
        .any(|(_, user)| *user == format!("ecs task definition {task_definition}")));
    for tag in [LTS, "myapp-1.03", "myapp-1.06", "myapp-1.07"] {
        let (index, _) = index_of(&record(&env, tag).await);
        pulls_on_both_platforms(&env, tag, &index).await.unwrap();
    }

    // And a second run expires and deletes nothing more, and announces nothing again
    let again = archgate::retention::run(&retention, Request::default()).await;
    let again_events = release_events(&env).await;
    assert!(again.repositories[0].deleted.is_empty(), "{again:?}");
    assert!(again.repositories[0].releases_expired.is_empty());
    assert!(of_type(&again_events, "Release Expired").is_empty());
    assert_eq!(
        of_type(&again_events, "Retention Report")[0]["releases-expired-by-rule"],
        json!({})
    );

    // And the reconciler, days later, finds no work left behind by the tombstones
    let reconciled = archgate_reconciler::handler::handle(
        &env.pipeline,
        archgate::config::ReconcilePolicy {
            stale_after_ms: 15 * 60_000,
            deadline_ms: 6 * 3_600_000,
        },
        boundary + 40 * DAY,
    )
    .await
    .unwrap();
    assert!(
        reconciled.reconciled.iter().all(|r| !r.changed()) && reconciled.failed.is_empty(),
        "{reconciled:?}"
    );
    assert!(release_events(&env).await.is_empty());
}

#[tokio::test]
async fn a_release_expired_while_another_builds_keeps_its_images_until_the_build_reports() {
    // Given a release whose build has not yet said which image it pushed (any image pushed
    // since its upload may be its own), then two releases published after it
    let env = installation_in(ManifestMode::Native, REGION).await;
    let building = "myapp-2.0";
    env.start_builds(upload(&env, &format!("releases/{building}.zip")).await)
        .await;
    // The emulator stamps pushes in whole seconds: the next ones land after the upload's.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let old = publish(&env, "myapp-1.01").await;
    publish(&env, "myapp-1.02").await;
    let (index, children) = index_of(&old);
    drain(&env).await;

    // When retention keeps only the newest release
    let policy = ReleasePolicy {
        keep_releases: Some(1),
        ..Default::default()
    };
    let report = apply_now(&env, &policy).await;

    // Then the older release is expired and announced, but its images stay for now
    assert_eq!(report.releases_expired.len(), 1, "{report:?}");
    assert_eq!(report.releases_expired[0].images, 0);
    assert_eq!(record(&env, "myapp-1.01").await.phase(), Phase::Expired);
    assert_eq!(
        of_type(&release_events(&env).await, "Release Expired").len(),
        1
    );
    assert!(Inventory::read(&env).await.holds(&index));

    // When the build reports, and retention runs again
    for arch in Arch::ALL {
        let (event, _) = env
            .finish_arch_build(building, arch, "SUCCEEDED", ImageShape::Manifest)
            .await
            .unwrap();
        env.build_completed(event).await;
    }
    let report = apply_now(&env, &policy).await;

    // Then the expired release's images go, and it is not announced again
    let left = Inventory::read(&env).await;
    assert!(!left.holds(&index));
    for child in children.values() {
        assert!(!left.holds(child));
    }
    assert!(report.releases_expired.is_empty(), "{report:?}");
    assert!(of_type(&release_events(&env).await, "Release Expired").is_empty());
}

// An SBOM attached less than the untagged age ago is still the release's: it is not kept for
// being young, or it would outlive its subject as an orphan referrer.
#[tokio::test]
async fn an_expired_releases_recent_sbom_goes_with_it() {
    // Given an old release with an SBOM attached moments ago, and a newer release
    let env = installation_in(ManifestMode::Native, REGION).await;
    let old = publish(&env, "myapp-1.01").await;
    let (index, _) = index_of(&old);
    let sbom = attach_sbom(&env, &index).await;
    publish(&env, "myapp-1.02").await;

    // When retention keeps only the newest release, now
    let report = apply_now(
        &env,
        &ReleasePolicy {
            keep_releases: Some(1),
            ..Default::default()
        },
    )
    .await;

    // Then the old release and its SBOM are gone
    assert_eq!(report.releases_expired.len(), 1, "{report:?}");
    let left = Inventory::read(&env).await;
    assert!(!left.holds(&index));
    assert!(
        !left.holds(&sbom),
        "the SBOM of the expired release is still there, kept as {:?}",
        report.kept_by_reason
    );
}

// A child shared with a kept release stays, and the expired release's internal tag on it
// goes: a spent name resolves to nothing.
#[tokio::test]
async fn an_expired_release_leaves_no_tag_on_a_child_it_shared() {
    // Given an old release and a newer one whose amd64 image is byte-identical
    let env = installation_in(ManifestMode::Native, REGION).await;
    let old = publish(&env, "myapp-1.01").await;
    let (_, children) = index_of(&old);
    let shared = children[&Arch::Amd64].clone();
    let (_, bytes) = manifest(&env, &shared).await.unwrap();
    publish_with_amd64(&env, "myapp-1.02", &bytes).await;

    // When retention keeps only the newest release
    let report = apply_now(
        &env,
        &ReleasePolicy {
            keep_releases: Some(1),
            ..Default::default()
        },
    )
    .await;

    // Then the shared image stays under the newer release's tag only
    assert_eq!(report.releases_expired.len(), 1, "{report:?}");
    let left = Inventory::read(&env).await;
    assert_eq!(left.tags.get("myapp-1.02-amd64"), Some(&shared));
    assert_eq!(
        left.tags_of("myapp-1.01"),
        Vec::<&str>::new(),
        "tags of the expired release still resolve"
    );
}

// Re-evaluating an expired release reads no findings of its deleted images: the tombstone
// answers, unchanged, and nothing is announced.
#[tokio::test]
async fn evaluating_an_expired_release_answers_with_the_tombstone() {
    // Given a release expired by retention, its images deleted
    let env = installation_in(ManifestMode::Native, REGION).await;
    publish(&env, "myapp-1.01").await;
    publish(&env, "myapp-1.02").await;
    let report = apply_now(
        &env,
        &ReleasePolicy {
            keep_releases: Some(1),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(report.releases_expired.len(), 1, "{report:?}");
    let tombstone = record(&env, "myapp-1.01").await;
    drain(&env).await;

    // When an operator re-evaluates it
    let evaluation = archgate::evaluate::evaluate(&env.pipeline, &env.key("myapp-1.01")).await;

    // Then it is still expired, unchanged, and nothing is announced
    match evaluation {
        Ok(evaluation) => assert_eq!(evaluation.phase, Phase::Expired),
        Err(error) => panic!("the evaluation failed: {}", archgate::error::chain(&error)),
    }
    assert_eq!(record(&env, "myapp-1.01").await, tombstone);
    assert!(release_events(&env).await.is_empty());
}

// ---------------------------------------------------------------------------------------

/// The repository most tests start from; see the constants at the top.
struct Fixture {
    env: LocalEnv,
    /// Every release before it (publication, attempt start) is more than N days old on a
    /// clock N days after it; every release after it, less.
    boundary: Millis,
    /// Every release's ledger record as the fixture left it.
    releases: BTreeMap<&'static str, Release>,
    /// What was attached to releases (SBOMs, signatures, attestations).
    artifacts: BTreeMap<&'static str, Vec<Artifact>>,
    /// The repository once built.
    before: Inventory,
}

/// A survey and the report of applying it (or of a dry run).
struct Outcome {
    survey: Survey,
    report: RepositoryReport,
}

#[derive(Debug, Clone)]
struct Artifact {
    tag: Option<String>,
    digest: Digest,
}

impl Fixture {
    async fn build() -> Self {
        let env = installation_in(ManifestMode::Native, REGION).await;
        let mut releases = BTreeMap::new();
        let mut artifacts: BTreeMap<&'static str, Vec<Artifact>> = BTreeMap::new();
        for tag in OLD_PUBLISHED {
            releases.insert(tag, publish(&env, tag).await);
        }
        releases.insert(OLD_BLOCKED, block(&env, OLD_BLOCKED).await);
        releases.insert(OLD_FAILED, fail(&env, OLD_FAILED).await);
        let boundary = boundary().await;
        for tag in NEW_PUBLISHED {
            let release = if tag == SHARING_NEW {
                let (_, children) = index_of(&releases[SHARING_OLD]);
                let (_, amd64) = manifest(&env, &children[&Arch::Amd64]).await.unwrap();
                publish_with_amd64(&env, tag, &amd64).await
            } else {
                publish(&env, tag).await
            };
            releases.insert(tag, release);
        }
        releases.insert(NEW_BLOCKED, block(&env, NEW_BLOCKED).await);

        for tag in [SIGNED, NEW_SIGNED] {
            let (index, _) = index_of(&releases[tag]);
            let sbom = attach_sbom(&env, &index).await;
            let mut attached = vec![Artifact {
                tag: None,
                digest: sbom,
            }];
            let kinds: &[&str] = if tag == SIGNED {
                &["sig", "att"]
            } else {
                &["sig"]
            };
            for kind in kinds {
                let (tag, digest) = cosign(&env, &index, kind).await;
                attached.push(Artifact {
                    tag: Some(tag),
                    digest,
                });
            }
            artifacts.insert(tag, attached);
        }
        let (_, children) = index_of(&releases[CHILD_SIGNED]);
        let (tag, digest) = cosign(&env, &children[&Arch::Amd64], "sig").await;
        artifacts.insert(
            CHILD_SIGNED,
            vec![Artifact {
                tag: Some(tag),
                digest,
            }],
        );
        let (index, _) = index_of(&releases[STABLE]);
        add_tag(&env, &index, "stable").await;

        register_task_definition(
            &env,
            "web",
            &format!("{}:{RUN_BY_ECS}", image_reference(&env)),
        )
        .await;
        let (_, children) = index_of(&releases[RUN_BY_LAMBDA]);
        let pinned = format!("{}@{}", image_reference(&env), children[&Arch::Amd64]);
        create_image_function(&env, "api", &pinned).await;

        // Last: until its build reports, anything pushed after its upload may be its own.
        releases.insert(IN_FLIGHT, in_flight(&env, IN_FLIGHT).await);
        drain(&env).await;
        let before = Inventory::read(&env).await;
        Fixture {
            env,
            boundary,
            releases,
            artifacts,
            before,
        }
    }

    fn days_after_boundary(&self, days: i64) -> Millis {
        self.boundary + days * DAY
    }

    /// The amd64 image the two sharing releases have in common.
    fn shared_child(&self) -> Digest {
        index_of(&self.releases[SHARING_OLD]).1[&Arch::Amd64].clone()
    }

    /// A dry run: the survey and the report it would make.
    async fn plan(&self, policy: ReleasePolicy, now: Millis) -> Outcome {
        self.plan_with_share(policy, SHARE, now).await
    }

    async fn plan_with_share(&self, policy: ReleasePolicy, share: f64, now: Millis) -> Outcome {
        self.run(rules_with_share(policy, share), now, true).await
    }

    async fn apply(&self, policy: ReleasePolicy, now: Millis) -> Outcome {
        self.run(rules(policy), now, false).await
    }

    async fn run(&self, rules: Rules, now: Millis, dry_run: bool) -> Outcome {
        let env = &self.env;
        let uses = AwsWorkloads::new(env.clients.ecs(), env.clients.lambda())
            .images_in_use()
            .await
            .unwrap();
        Adapters::of(env)
            .run(env, &rules, &uses, now, dry_run)
            .await
    }

    /// What a release holds in the repository: its index, children, the images its builds
    /// pushed, what was attached to it.
    fn holdings(&self, tag: &str) -> BTreeSet<Digest> {
        let release = &self.releases[tag];
        let mut digests = BTreeSet::new();
        if let Some(candidate) = &release.candidate {
            digests.insert(candidate.digest.clone());
            digests.extend(candidate.children.iter().map(|c| c.digest.clone()));
        }
        for arch in Arch::ALL {
            digests.extend(
                release
                    .build(archgate::domain::BuildRole::arch(arch))
                    .image_digest
                    .clone(),
            );
        }
        for artifact in self.artifacts.get(tag).into_iter().flatten() {
            digests.insert(artifact.digest.clone());
        }
        // Its provenance and verdict, attached as referrers of its index
        if let Some(candidate) = &release.candidate {
            if let Some(manifest) = &candidate.manifest {
                let subject = archgate::domain::attestation::Descriptor::of(
                    candidate
                        .media_type
                        .as_deref()
                        .unwrap_or(archgate::domain::oci::OCI_INDEX),
                    manifest.as_bytes(),
                );
                digests.extend(
                    release
                        .attestations
                        .iter()
                        .map(|a| a.referrer(subject.clone()).digest),
                );
            }
        }
        digests
    }

    /// After an apply that expired `expired`: exactly their images are gone (those a kept
    /// release also holds stay), with every tag on them; every other tag names what it
    /// named; every kept published release pulls on both platforms; the expired releases'
    /// records are tombstones, each announced once by `Release Expired`; the kept ones'
    /// records are unchanged, the release in flight's included.
    async fn assert_applied(&self, report: &RepositoryReport, expired: &BTreeSet<&str>) {
        let env = &self.env;
        let kept: Vec<&str> = self
            .releases
            .keys()
            .copied()
            .filter(|t| !expired.contains(t))
            .collect();
        let held: BTreeSet<Digest> = kept.iter().flat_map(|t| self.holdings(t)).collect();
        let gone: BTreeSet<Digest> = expired
            .iter()
            .flat_map(|t| self.holdings(t))
            .filter(|d| !held.contains(d))
            .collect();
        assert!(report.failed.is_empty(), "{report:?}");
        assert_eq!(
            report.deleted.iter().cloned().collect::<BTreeSet<_>>(),
            gone,
            "{report:?}"
        );

        let left = Inventory::read(env).await;
        let expected: BTreeSet<Digest> = self.before.digests.difference(&gone).cloned().collect();
        assert_eq!(left.digests, expected);
        for (tag, digest) in &self.before.tags {
            let owner = expired
                .iter()
                .find(|t| *tag == **t || tag.starts_with(&format!("{t}-")));
            if gone.contains(digest) || (owner.is_some() && !held.contains(digest)) {
                assert!(!left.tags.contains_key(tag), "{tag} still resolves");
            } else if owner.is_none() {
                assert_eq!(left.tags.get(tag), Some(digest), "{tag} moved or went");
            }
        }
        for tag in expired {
            assert!(!left.tags.contains_key(*tag), "{tag} still resolves");
        }

        for tag in &kept {
            let release = &self.releases[tag];
            assert_eq!(record(env, tag).await, *release, "{tag} changed");
            if release.phase() == Phase::Published {
                let (index, _) = index_of(release);
                pulls_on_both_platforms(env, tag, &index)
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
            }
        }
        for tag in expired {
            let tombstone = record(env, tag).await;
            let expiry = tombstone.expired.as_ref().expect("a tombstone");
            assert_eq!(tombstone.phase(), Phase::Expired, "{tag}");
            assert_eq!(expiry.phase, self.releases[tag].phase(), "{tag}");
        }
        let reported: BTreeSet<&str> = report
            .releases_expired
            .iter()
            .map(|r| r.tag.as_str())
            .collect();
        assert_eq!(&reported, expired);

        let events = release_events(env).await;
        let announced: Vec<&str> = of_type(&events, "Release Expired")
            .iter()
            .map(|e| e["tag"].as_str().unwrap())
            .collect();
        assert_eq!(announced.len(), expired.len(), "{announced:?}");
        assert_eq!(&announced.iter().copied().collect::<BTreeSet<_>>(), expired);
    }

    /// A new version of an expired published release's file is refused with the rule
    /// `expired`, and nothing is built.
    async fn assert_reupload_refused(&self, tag: &str) {
        let env = &self.env;
        release_events(env).await;
        calls(env);
        let answer = env
            .start_builds(upload(env, &format!("releases/{tag}.zip")).await)
            .await;
        assert_eq!(status(&answer), "applied", "{answer}");
        let events = release_events(env).await;
        let rejected = of_type(&events, "Release Rejected");
        assert_eq!(rejected.len(), 1, "{events:?}");
        assert_eq!(rejected[0]["rule"], "expired");
        assert_eq!(rejected[0]["tag"], tag);
        assert_eq!(count(&calls(env), "CodeBuild.StartBuild"), 0);
        assert_eq!(record(env, tag).await.phase(), Phase::Expired);
        assert!(resolve(env, tag).await.is_none());
    }
}

/// Every rule at once: the newest 15, anything younger than 30 days, `*-lts`, attempts for
/// 30 days.
fn all_rules() -> ReleasePolicy {
    ReleasePolicy {
        keep_releases: Some(15),
        keep_days: Some(30),
        protect: vec![TagPattern::new("*-lts")],
        attempt_days: Some(30),
        ..Default::default()
    }
}

fn rules(releases: ReleasePolicy) -> Rules {
    rules_with_share(releases, SHARE)
}

fn rules_with_share(releases: ReleasePolicy, share: f64) -> Rules {
    Rules {
        images: RetentionPolicy {
            untagged_age_ms: 7 * DAY,
            max_delete_share: share,
            delete_orphan_referrers: false,
            force: false,
        },
        releases: ReleasePolicy {
            max_expire_share: share,
            ..releases
        },
    }
}

/// Plans and applies `policy` now, with no workloads.
async fn apply_now(env: &LocalEnv, policy: &ReleasePolicy) -> RepositoryReport {
    let rules = rules(policy.clone());
    Adapters::of(env)
        .run(env, &rules, &[], SystemClock.now_millis(), false)
        .await
        .report
}

/// The adapters retention reads and writes through.
struct Adapters {
    inventory: EcrRegistry,
    ledger: DynamoLedger,
    events: EventBridgePublisher,
}

impl Adapters {
    fn of(env: &LocalEnv) -> Self {
        Adapters {
            inventory: EcrRegistry::new(env.clients.ecr.clone()),
            ledger: DynamoLedger::new(env.clients.dynamodb.clone(), &env.config.ledger_table),
            events: EventBridgePublisher::new(
                env.clients.eventbridge.clone(),
                &env.config.event_bus,
            ),
        }
    }

    fn targets(&self) -> Targets<'_, EcrRegistry, DynamoLedger, EventBridgePublisher> {
        Targets {
            inventory: &self.inventory,
            ledger: &self.ledger,
            events: Some(&self.events),
        }
    }

    /// Surveys the repository with `rules` at `now`, then applies the survey (or not).
    async fn run(
        &self,
        env: &LocalEnv,
        rules: &Rules,
        uses: &[ImageUse],
        now: Millis,
        dry_run: bool,
    ) -> Outcome {
        let repository = &env.config.repository;
        let survey = survey_repository(&self.inventory, &self.ledger, repository, rules, uses, now)
            .await
            .unwrap();
        let report = apply_plan(&self.targets(), repository, &survey, dry_run)
            .await
            .unwrap();
        Outcome { survey, report }
    }
}

/// A moment between what was published before it and what is published after, with time
/// on either side so that clocks computed from it never fall on a publication.
async fn boundary() -> Millis {
    tokio::time::sleep(Duration::from_millis(600)).await;
    let at = SystemClock.now_millis();
    tokio::time::sleep(Duration::from_millis(600)).await;
    at
}

/// Each release's verdict: the rule that keeps it, or `expire <rule>`.
fn fates(survey: &Survey) -> BTreeMap<String, String> {
    survey
        .releases
        .releases
        .iter()
        .map(|r| {
            let fate = match &r.fate {
                Fate::Keep(keep) => keep.name().to_owned(),
                Fate::Expire { rule, .. } => format!("expire {}", rule.name()),
            };
            (r.tag.clone(), fate)
        })
        .collect()
}

/// The verdicts the groups give, later groups over earlier ones, then the standing ones.
fn verdicts(groups: &[(&[&str], &str)]) -> BTreeMap<String, String> {
    let mut verdicts = BTreeMap::new();
    for (tags, fate) in groups.iter().chain(STANDING.iter()) {
        for tag in *tags {
            verdicts.insert((*tag).to_owned(), (*fate).to_owned());
        }
    }
    verdicts
}

fn expiring(survey: &Survey) -> BTreeSet<&str> {
    survey.releases.expiring().map(|r| r.tag.as_str()).collect()
}

/// Every event published since the last call (as many reads as it takes).
async fn release_events(env: &LocalEnv) -> Vec<Value> {
    let mut events = Vec::new();
    loop {
        let batch = env.release_events().await.expect("release events");
        if batch.is_empty() {
            return events;
        }
        events.extend(batch);
    }
}

async fn drain(env: &LocalEnv) {
    release_events(env).await;
}

fn of_type<'e>(events: &'e [Value], kind: &str) -> Vec<&'e Value> {
    events
        .iter()
        .filter(|e| e["detail-type"] == kind)
        .map(|e| &e["detail"])
        .collect()
}
