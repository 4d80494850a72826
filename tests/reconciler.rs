//! The reconciler against the emulator: a release whose CodeBuild completion events were
//! lost, one whose scan events were lost, and one past its deadline all end final.

use archgate::config::ReconcilePolicy;
use archgate::domain::{Arch, Phase};
use archgate::ports::{Clock, SystemClock};
use archgate_integration_tests::*;
use archgate_reconciler::handler::handle;

const POLICY: ReconcilePolicy = ReconcilePolicy {
    stale_after_ms: 15 * 60_000,
    deadline_ms: 6 * 3_600_000,
};

fn minutes_later(minutes: i64) -> i64 {
    SystemClock.now_millis() + minutes * 60_000
}

async fn detail_types(env: &archgate_cli::local::LocalEnv) -> Vec<String> {
    let mut kinds: Vec<String> = env
        .release_events()
        .await
        .unwrap()
        .iter()
        .map(|e| e["detail-type"].as_str().unwrap_or("?").to_owned())
        .collect();
    kinds.sort();
    kinds
}

#[tokio::test]
async fn lost_build_completions_are_recovered_from_codebuild() {
    // Given a release whose builds pushed their images but whose completion events were lost
    let env = installation(ManifestMode::Native).await;
    env.start_builds(upload(&env, KEY).await).await;
    for arch in Arch::ALL {
        env.finish_arch_build(TAG, arch, "SUCCEEDED", ImageShape::Manifest)
            .await
            .unwrap();
    }
    detail_types(&env).await;

    // When the reconciler runs before the release is stale, nothing happens
    let early = handle(&env.pipeline, POLICY, minutes_later(1))
        .await
        .unwrap();
    assert!(early.reconciled.is_empty(), "{early:?}");

    // When it runs once the release has not moved for a while
    let done = handle(&env.pipeline, POLICY, minutes_later(20))
        .await
        .unwrap();

    // Then CodeBuild's answer completes the builds and the candidate is assembled
    assert_eq!(done.reconciled.len(), 1, "{done:?}");
    assert_eq!(
        done.reconciled[0].phase_after, "candidate_ready",
        "{done:?}"
    );
    assert_eq!(
        env.release(TAG).await.unwrap().unwrap().release.phase(),
        Phase::CandidateReady
    );
    assert_eq!(
        detail_types(&env).await,
        ["Release Candidate Ready", "Release Reconciled"]
    );
}

#[tokio::test]
async fn lost_scan_events_are_recovered_from_the_findings() {
    // Given a candidate whose per-arch images were scanned clean, but whose scan events were lost
    let env = installation(ManifestMode::Native).await;
    candidate_ready(&env, TAG).await;
    for arch in Arch::ALL {
        env.scan_arch_image(TAG, arch, "COMPLETE", &[])
            .await
            .unwrap();
    }
    detail_types(&env).await;

    // When the reconciler runs
    let done = handle(&env.pipeline, POLICY, minutes_later(20))
        .await
        .unwrap();

    // Then the verdicts are read and the release is published
    assert_eq!(done.reconciled[0].phase_after, "published", "{done:?}");
    assert!(resolve(&env, TAG).await.is_some());
    assert_eq!(
        detail_types(&env).await,
        ["Release Published", "Release Reconciled"]
    );
}

#[tokio::test]
async fn a_release_past_its_deadline_fails_with_the_reason() {
    // Given a candidate whose images are never scanned
    let env = installation(ManifestMode::Native).await;
    candidate_ready(&env, TAG).await;
    detail_types(&env).await;

    // When the reconciler runs seven hours later
    let done = handle(&env.pipeline, POLICY, minutes_later(7 * 60))
        .await
        .unwrap();

    // Then the release is Failed with the reason, and announced
    assert_eq!(done.reconciled[0].phase_after, "failed", "{done:?}");
    let release = env.release(TAG).await.unwrap().unwrap().release;
    assert!(
        release.failure_reason().unwrap().contains("never scanned"),
        "{:?}",
        release.failure_reason()
    );
    assert_eq!(
        detail_types(&env).await,
        ["Release Failed", "Release Reconciled"]
    );

    // And a later pass leaves the final release alone
    let again = handle(&env.pipeline, POLICY, minutes_later(8 * 60))
        .await
        .unwrap();
    assert!(again.reconciled.is_empty(), "{again:?}");
}
