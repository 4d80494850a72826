//! Fifty releases at once through the local pipeline, every event delivered twice and the
//! deliveries shuffled and run concurrently: every release ends published and every effect
//! happened once.

use archgate::domain::{Arch, Phase};
use archgate_integration_tests::*;
use futures_util::stream::{self, StreamExt};
use serde_json::Value;
use std::collections::BTreeMap;

const RELEASES: usize = 50;
const IN_FLIGHT: usize = 12;

/// A small deterministic shuffle (xorshift), so a failure can be replayed.
fn shuffle<T>(items: &mut [T], mut seed: u64) {
    for i in (1..items.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        items.swap(i, (seed % (i as u64 + 1)) as usize);
    }
}

/// Delivers every event twice, shuffled, with bounded concurrency; no delivery may fail.
/// Returns the AWS calls the handlers made.
async fn deliver(
    env: &archgate_cli::local::LocalEnv,
    events: Vec<Value>,
    seed: u64,
) -> Vec<String> {
    env.calls.take();
    let mut deliveries: Vec<Value> = events.clone();
    deliveries.extend(events);
    shuffle(&mut deliveries, seed);
    let answers: Vec<(Value, Value)> = stream::iter(deliveries)
        .map(|event| async move {
            let answer = archgate_testkit::routing::dispatch(&env.pipeline, event.clone()).await;
            (event, answer)
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    // A retryable error is retried, as Lambda retries an asynchronous invocation (the
    // emulator's conditional writes are not atomic under load, so a moving tag's lock can be
    // lost to a racing promotion); anything else fails the test.
    for (event, answer) in answers {
        if status(&answer) != "error" {
            continue;
        }
        assert_eq!(answer["retryable"], true, "{answer}");
        let retried = archgate_testkit::routing::dispatch(&env.pipeline, event).await;
        assert_ne!(status(&retried), "error", "{answer} then {retried}");
    }
    env.calls.take()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_releases_with_duplicated_shuffled_events_each_happen_once() {
    let env = installation(ManifestMode::Native).await;
    let tags: Vec<String> = (0..RELEASES).map(|i| format!("load-{i}")).collect();

    // Given fifty uploads, delivered twice each in a shuffled order
    let mut uploads = Vec::new();
    for tag in &tags {
        uploads.push(upload(&env, &format!("releases/{tag}.zip")).await);
    }
    let mut calls = deliver(&env, uploads, 1).await;

    // When both builds of every release finish, their completions arrive twice, shuffled
    let mut completions = Vec::new();
    for tag in &tags {
        for arch in Arch::ALL {
            let (event, _) = env
                .finish_arch_build(tag, arch, "SUCCEEDED", ImageShape::Manifest)
                .await
                .unwrap();
            completions.push(event);
        }
    }
    calls.extend(deliver(&env, completions, 2).await);

    // And every per-arch image's scan arrives twice, shuffled
    let mut scans = Vec::new();
    for tag in &tags {
        for arch in Arch::ALL {
            scans.push(
                env.scan_arch_image(tag, arch, "COMPLETE", &[])
                    .await
                    .unwrap(),
            );
        }
    }
    calls.extend(deliver(&env, scans, 3).await);

    // Then every release is published
    for tag in &tags {
        let release = env.release(tag).await.unwrap().unwrap().release;
        assert_eq!(release.phase(), Phase::Published, "{tag}");
        assert!(release.pending.is_empty(), "{tag}: {:?}", release.pending);
    }
    // And each effect happened once per release
    let tally = archgate::aws::tally(calls);
    assert_eq!(
        count(&tally, "CodeBuild.StartBuild"),
        2 * RELEASES,
        "{tally:?}"
    );
    // one candidate index, two attestation referrers (signed once each) and the release tag
    // per release, and `latest` moved only forward: at most once per release, ending on the
    // newest upload (the last one)
    assert_eq!(count(&tally, "KMS.Sign"), 2 * RELEASES, "{tally:?}");
    let latest_moves = count(&tally, "ECR.PutImage") - 4 * RELEASES;
    assert!((1..=RELEASES).contains(&latest_moves), "{tally:?}");
    assert_eq!(
        resolve(&env, "latest").await,
        resolve(&env, tags.last().unwrap()).await
    );
    let events = env.release_events().await.unwrap();
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for event in &events {
        *kinds
            .entry(event["detail-type"].as_str().unwrap_or("?").to_owned())
            .or_default() += 1;
    }
    for kind in [
        "Release Started",
        "Release Candidate Ready",
        "Release Published",
    ] {
        assert_eq!(kinds.get(kind), Some(&RELEASES), "{kinds:?}");
    }
}
