//! A scheduled retention run covers every repository archgate manages, each under its own
//! policy, within the invocation's time: it stops between repositories, and the next run
//! starts where it stopped. On the in-memory services.

use archgate::config::{sample_lookup, RetentionConfig, RETENTION_CONCURRENCY};
use archgate::domain::oci::{RawManifest, OCI_MANIFEST};
use archgate::domain::policy::PolicyRecord;
use archgate::ports::Ledger;
use archgate::retention::{run, Request, Retention};
use archgate_testkit::memory::{Chaos, ManualClock, Memory, MemoryServices, MemoryWorkloads};

const DAY: i64 = 24 * 3600 * 1000;
const NOW: i64 = 1_800_000_000_000;

/// Three repositories, each with one untagged image a month old (retention deletes it) and
/// a tagged one.
fn installation() -> (MemoryServices, Retention<Memory>) {
    let services = MemoryServices::new(Chaos::default(), ManualClock::at(NOW - 30 * DAY));
    for repository in ["apps/api", "apps/web", "myapp"] {
        services.registry.create_repository(repository, false);
        let stray = RawManifest {
            media_type: Some(OCI_MANIFEST.to_owned()),
            bytes: format!(r#"{{"schemaVersion":2,"layers":[],"of":"{repository}"}}"#).into_bytes(),
        };
        services.registry.push(repository, None, stray);
        // A tagged image beside it: deleting half the repository is within the safety valve.
        let kept = RawManifest {
            media_type: Some(OCI_MANIFEST.to_owned()),
            bytes: format!(r#"{{"schemaVersion":2,"layers":[],"kept":"{repository}"}}"#)
                .into_bytes(),
        };
        services.registry.push(repository, Some("stable"), kept);
    }
    services.clock.set(NOW);
    let config = RetentionConfig::from_lookup(sample_lookup(&[
        (
            archgate::config::RETENTION_REPOSITORIES,
            "myapp,apps/api,apps/web",
        ),
        // One at a time: the order the run takes them in is the order they report in.
        (RETENTION_CONCURRENCY, "1"),
    ]))
    .expect("valid");
    let retention = Retention {
        config,
        inventory: services.registry.clone(),
        workloads: MemoryWorkloads::new(services.chaos.clone()),
        ledger: services.ledger.clone(),
        events: services.events.clone(),
        clock: services.clock.clone(),
    };
    (services, retention)
}

/// The repositories of the `Retention Report` events, in the order they were published.
fn reported(services: &MemoryServices) -> Vec<String> {
    services
        .events
        .published()
        .iter()
        .filter(|e| e.detail_type == "Retention Report")
        .map(|e| e.detail["repository"].as_str().unwrap_or("?").to_owned())
        .collect()
}

#[tokio::test]
async fn a_run_out_of_time_starts_nothing_more_and_the_next_one_starts_there() {
    // Given three repositories to clean
    let (services, retention) = installation();

    // When a scheduled run has no time left before its deadline
    let report = run(
        &retention,
        Request {
            deadline: Some(NOW + 1_000),
            ..Request::default()
        },
    )
    .await;

    // Then it starts no repository, deletes nothing, and says where the next run starts
    assert!(report.repositories.is_empty());
    assert_eq!(report.not_started, ["apps/api", "apps/web", "myapp"]);
    assert_eq!(
        services.ledger.retention_resume().await.unwrap().as_deref(),
        Some("apps/api")
    );

    // Given a run that stopped before apps/web
    services
        .ledger
        .set_retention_resume(Some("apps/web"))
        .await
        .unwrap();

    // When the next scheduled run has time enough
    let report = run(&retention, Request::default()).await;

    // Then it starts with apps/web, goes round to the rest, and cleans each one
    assert_eq!(reported(&services), ["apps/web", "myapp", "apps/api"]);
    assert!(report.not_started.is_empty());
    assert!(report.repositories.iter().all(|r| r.deleted.len() == 1));
    // And the run after it starts from the first again
    assert_eq!(services.ledger.retention_resume().await.unwrap(), None);
}

#[tokio::test]
async fn a_repository_whose_policy_cannot_be_read_keeps_everything_and_the_others_go_on() {
    // Given apps/web's policy item damaged, and apps/api's keeping untagged images longer
    // than the environment would (through a release rule that is valid)
    let (services, retention) = installation();
    services
        .ledger
        .put_raw_policy("apps/web", 2, "{\"repository\": \"apps/web\"");
    let record = PolicyRecord {
        repository: "apps/api".to_owned(),
        version: 1,
        values: [("RETENTION_KEEP_RELEASES".to_owned(), "3".to_owned())].into(),
        updated_at: NOW,
    };
    services.ledger.save_policy(&record, None).await.unwrap();

    // When retention runs on schedule
    let report = run(&retention, Request::default()).await;

    // Then apps/web deletes nothing and its report says why; the others are cleaned
    let of = |name: &str| {
        report
            .repositories
            .iter()
            .find(|r| r.repository == name)
            .unwrap_or_else(|| panic!("{name} reported"))
    };
    assert!(of("apps/web").deleted.is_empty());
    let error = of("apps/web").error.clone().unwrap_or_default();
    assert!(
        error.contains("nothing is deleted in this repository"),
        "{error}"
    );
    assert!(error.contains("policy of apps/web"), "{error}");
    assert_eq!(of("apps/api").deleted.len(), 1);
    assert_eq!(of("myapp").deleted.len(), 1);
}
