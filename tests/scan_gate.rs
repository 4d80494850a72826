//! The scan gate against the emulator: per-arch scans decide whether the candidate index is
//! promoted to its release tag (and `latest`) or blocked, whichever arrives last.

use archgate::domain::{Arch, Phase};
use archgate_cli::local::{config_with, LocalEnv};
use archgate_integration_tests::*;
use serde_json::{json, Value};

const CRITICAL: LocalFinding = LocalFinding {
    id: "CVE-2024-3094",
    severity: "CRITICAL",
    package: "xz-utils",
};
const HIGH: LocalFinding = LocalFinding {
    id: "CVE-2023-4863",
    severity: "HIGH",
    package: "libwebp",
};

async fn env_with(overrides: &[(&str, &str)]) -> LocalEnv {
    LocalEnv::start(config_with(ManifestMode::Native, overrides))
        .await
        .expect("the local AWS emulator is required")
}

async fn published_events(env: &LocalEnv) -> Vec<Value> {
    env.release_events().await.unwrap()
}

fn kinds(events: &[Value]) -> Vec<&str> {
    let mut kinds: Vec<&str> = events
        .iter()
        .filter_map(|e| e["detail-type"].as_str())
        .collect();
    kinds.sort();
    kinds
}

#[tokio::test]
async fn the_last_passing_scan_promotes_the_candidate() {
    // Given a candidate index whose per-arch images are scanned afterwards
    let env = installation(ManifestMode::Native).await;
    candidate_ready(&env, TAG).await;
    published_events(&env).await;
    let amd = env
        .scan_arch_image(TAG, Arch::Amd64, "COMPLETE", &[HIGH])
        .await
        .unwrap();
    let arm = env
        .scan_arch_image(TAG, Arch::Arm64, "COMPLETE", &[])
        .await
        .unwrap();
    calls(&env);

    // When the first scan passes, nothing is promoted yet
    let answer = env.scan_gate(amd).await;
    assert_eq!(answer["phase"], "candidate_ready", "{answer}");
    let first = calls(&env);
    // (the release by its tag, the digest pointer for every other release holding the
    // image, the verdict)
    assert!(
        first.values().sum::<usize>() <= 4,
        "a passing scan that does not promote: {first:?}"
    );

    // When the last scan passes, the index gets the release tag and `latest`
    let answer = env.scan_gate(arm).await;
    assert_eq!(answer["phase"], "published", "{answer}");
    let last = calls(&env);
    // (and the promotion: the release tag, then `latest` under its lock in the ledger, taken
    // and given back, so it only ever moves forward; before it, the provenance and verdict
    // signed (the key described first) and recorded, their three blobs uploaded and two
    // referrers put; and the repository's policy, read once for the verdict, the attestation
    // and the moving tags)
    assert!(
        last.values().sum::<usize>() <= 26,
        "a passing scan that promotes: {last:?}"
    );
    let index = env
        .release(TAG)
        .await
        .unwrap()
        .unwrap()
        .release
        .candidate
        .unwrap()
        .digest
        .to_string();
    assert_eq!(resolve(&env, TAG).await.as_deref(), Some(index.as_str()));
    assert_eq!(
        resolve(&env, "latest").await.as_deref(),
        Some(index.as_str())
    );
    let events = published_events(&env).await;
    assert_eq!(kinds(&events), vec!["Release Published"]);
    assert_eq!(
        events[0]["detail"]["tags"],
        json!([TAG, "latest"]),
        "{}",
        events[0]
    );
}

#[tokio::test]
async fn scans_that_come_first_let_the_candidate_promote_itself() {
    // Given both per-arch images scanned clean before the second build's completion arrives
    let env = installation(ManifestMode::Native).await;
    env.start_builds(upload(&env, KEY).await).await;
    let (a, _) = env
        .finish_arch_build(TAG, Arch::Amd64, "SUCCEEDED", ImageShape::Manifest)
        .await
        .unwrap();
    let (b, _) = env
        .finish_arch_build(TAG, Arch::Arm64, "SUCCEEDED", ImageShape::Manifest)
        .await
        .unwrap();
    for arch in Arch::ALL {
        let scan = env
            .scan_arch_image(TAG, arch, "COMPLETE", &[])
            .await
            .unwrap();
        let answer = env.scan_gate(scan).await;
        assert_eq!(answer["phase"], "building", "{answer}");
    }
    env.build_completed(a).await;

    // When the last completion assembles the candidate
    let answer = env.build_completed(b).await;

    // Then the same invocation promotes it
    assert_eq!(answer["phase"], "published", "{answer}");
    assert!(resolve(&env, TAG).await.is_some());
    let events = published_events(&env).await;
    assert_eq!(
        kinds(&events)
            .iter()
            .filter(|k| **k == "Release Published")
            .count(),
        1,
        "{events:?}"
    );
}

#[tokio::test]
async fn a_critical_finding_blocks_the_release_and_says_why() {
    // Given a candidate whose amd64 image carries a critical finding
    let env = installation(ManifestMode::Native).await;
    candidate_ready(&env, TAG).await;
    published_events(&env).await;
    let amd = env
        .scan_arch_image(TAG, Arch::Amd64, "COMPLETE", &[CRITICAL, HIGH])
        .await
        .unwrap();
    let arm = env
        .scan_arch_image(TAG, Arch::Arm64, "COMPLETE", &[])
        .await
        .unwrap();

    // When both scans are judged
    let answer = env.scan_gate(amd).await;
    assert_eq!(answer["phase"], "blocked", "{answer}");
    let answer = env.scan_gate(arm).await;

    // Then the release is blocked: no release tag, one `Release Blocked` naming image, counts,
    // the worst finding and the rule
    assert_eq!(status(&answer), "applied", "{answer}");
    assert_eq!(
        env.release(TAG).await.unwrap().unwrap().release.phase(),
        Phase::Blocked
    );
    assert_eq!(resolve(&env, TAG).await, None);
    assert!(
        resolve(&env, &format!("{TAG}-candidate")).await.is_some(),
        "the candidate stays for inspection"
    );
    let events = published_events(&env).await;
    assert_eq!(kinds(&events), vec!["Release Blocked"]);
    let detail = &events[0]["detail"];
    assert_eq!(detail["scans"]["amd64"]["verdict"], "block");
    assert_eq!(detail["scans"]["amd64"]["counts"]["CRITICAL"], 1);
    assert_eq!(
        detail["scans"]["amd64"]["worst-findings"][0]["id"],
        "CVE-2024-3094"
    );
    assert_eq!(
        detail["scans"]["amd64"]["worst-findings"][0]["package"],
        "xz-utils"
    );
    assert!(
        detail["reason"]
            .as_str()
            .unwrap()
            .contains("ARCHGATE_GATE_MAX_CRITICAL=0"),
        "{detail}"
    );
}

#[tokio::test]
async fn an_allowlisted_finding_does_not_block_until_it_expires() {
    for (expires, expected) in [("2999-12-31", "published"), ("2020-01-01", "blocked")] {
        let allowlist = format!(
            r#"[{{"id": "CVE-2024-3094", "expires": "{expires}", "reason": "not reachable"}}]"#
        );
        let env = env_with(&[("ARCHGATE_GATE_ALLOWLIST", &allowlist)]).await;
        candidate_ready(&env, TAG).await;
        let amd = env
            .scan_arch_image(TAG, Arch::Amd64, "COMPLETE", &[CRITICAL])
            .await
            .unwrap();
        let arm = env
            .scan_arch_image(TAG, Arch::Arm64, "COMPLETE", &[])
            .await
            .unwrap();
        env.scan_gate(amd).await;
        let answer = env.scan_gate(arm).await;
        assert_eq!(
            answer["phase"], expected,
            "allowlist until {expires}: {answer}"
        );
    }
}

#[tokio::test]
async fn a_failed_scan_blocks_unless_the_gate_is_told_to_pass() {
    for (setting, expected) in [("block", "blocked"), ("pass", "published")] {
        let env = env_with(&[("ARCHGATE_GATE_ON_SCAN_FAILURE", setting)]).await;
        candidate_ready(&env, TAG).await;
        let amd = env
            .scan_arch_image(TAG, Arch::Amd64, "FAILED", &[])
            .await
            .unwrap();
        let arm = env
            .scan_arch_image(TAG, Arch::Arm64, "COMPLETE", &[])
            .await
            .unwrap();
        env.scan_gate(arm).await;
        let answer = env.scan_gate(amd).await;
        assert_eq!(answer["phase"], expected, "on failure {setting}: {answer}");
    }
}

#[tokio::test]
async fn a_moving_tag_in_an_immutable_repository_is_a_clear_error() {
    // Given an immutable repository where `latest` already names an older release
    let env = installation(ManifestMode::Native).await;
    candidate_ready(&env, "myapp-1.0.0").await;
    for arch in Arch::ALL {
        let scan = env
            .scan_arch_image("myapp-1.0.0", arch, "COMPLETE", &[])
            .await
            .unwrap();
        env.scan_gate(scan).await;
    }
    assert!(resolve(&env, "latest").await.is_some());
    env.clients
        .ecr
        .put_image_tag_mutability()
        .repository_name("myapp")
        .image_tag_mutability(aws_sdk_ecr::types::ImageTagMutability::Immutable)
        .send()
        .await
        .unwrap();
    candidate_ready(&env, TAG).await;
    let amd = env
        .scan_arch_image(TAG, Arch::Amd64, "COMPLETE", &[])
        .await
        .unwrap();
    let arm = env
        .scan_arch_image(TAG, Arch::Arm64, "COMPLETE", &[])
        .await
        .unwrap();
    env.scan_gate(amd).await;

    // When the last scan passes and promotion tries to move `latest`
    let answer = env.scan_gate(arm).await;

    // Then the error names the repository and the tag, and is not retried blindly
    assert_eq!(status(&answer), "error", "{answer}");
    assert_eq!(answer["error_type"], "Archgate.ImmutableMovingTag");
    assert_eq!(answer["retryable"], false);
    let message = answer["error_message"].as_str().unwrap();
    assert!(
        message.contains("repository myapp has immutable tags") && message.contains("`latest`"),
        "{message}"
    );
}

#[tokio::test]
async fn inspector_scans_name_the_repository_by_arn() {
    // Given a repository whose name has a `/`, and an Inspector2 event naming it by ARN
    let env = env_with(&[("ARCHGATE_REPOSITORY", "team/myapp")]).await;
    candidate_ready(&env, TAG).await;
    let digest = env
        .release(TAG)
        .await
        .unwrap()
        .unwrap()
        .release
        .candidate
        .unwrap()
        .children[1]
        .digest
        .to_string();
    let mut event = sample("inspector2-scan.json");
    event["detail"]["image-digest"] = json!(digest);
    event["detail"]["image-tags"] = json!([format!("{TAG}-arm64")]);

    // When scan-gate handles it
    let answer = env.scan_gate(event).await;

    // Then the arm64 verdict is recorded for the release (HIGH findings pass the default policy)
    assert_eq!(status(&answer), "applied", "{answer}");
    let release = env.release(TAG).await.unwrap().unwrap().release;
    assert!(release
        .scans
        .iter()
        .any(|s| s.arch == Arch::Arm64 && s.verdict.passes()));
}

#[tokio::test]
async fn duplicate_and_older_scans_converge_to_the_same_verdict() {
    let env = installation(ManifestMode::Native).await;
    candidate_ready(&env, TAG).await;
    let amd = env
        .scan_arch_image(TAG, Arch::Amd64, "COMPLETE", &[CRITICAL])
        .await
        .unwrap();
    let mut older = amd.clone();
    older["time"] = json!("2020-01-01T00:00:00Z");
    older["detail"]["finding-severity-counts"] = json!({});

    let answer = env.scan_gate(amd.clone()).await;
    assert_eq!(answer["phase"], "blocked", "{answer}");
    let answer = env.scan_gate(amd).await;
    assert_eq!(status(&answer), "ignored", "a duplicate: {answer}");
    let answer = env.scan_gate(older).await;
    assert_eq!(status(&answer), "ignored", "an older scan: {answer}");
    assert!(answer["reason"].as_str().unwrap().contains("older scan"));
    assert_eq!(
        env.release(TAG).await.unwrap().unwrap().release.phase(),
        Phase::Blocked
    );
}

#[tokio::test]
async fn scans_archgate_does_not_judge_are_ignored_or_rejected_with_a_reason() {
    let env = installation(ManifestMode::Native).await;
    candidate_ready(&env, TAG).await;
    let release = env.release(TAG).await.unwrap().unwrap().release;
    let index_digest = release.candidate.clone().unwrap().digest.to_string();
    let scan = env
        .scan_arch_image(TAG, Arch::Amd64, "COMPLETE", &[])
        .await
        .unwrap();

    let mut other_repository = scan.clone();
    other_repository["detail"]["repository-name"] = json!("someone-else");
    let mut untagged = scan.clone();
    untagged["detail"]["image-tags"] = json!([]);
    untagged["detail"]["image-digest"] =
        json!(archgate::domain::Digest::of(b"some other image").as_str());
    let mut index = scan.clone();
    index["detail"]["image-digest"] = json!(index_digest);
    let mut unknown_release = scan.clone();
    unknown_release["detail"]["image-tags"] = json!(["never-built-1.0-amd64"]);
    unknown_release["detail"]["image-digest"] =
        json!(archgate::domain::Digest::of(b"never built").as_str());
    for (event, expected) in [
        (other_repository, "not archgate's repository"),
        (untagged, "carries no archgate per-arch tag"),
        (index, "is the image index"),
        (unknown_release, "no release"),
    ] {
        let answer = env.scan_gate(event).await;
        assert_eq!(status(&answer), "ignored", "{expected}: {answer}");
        assert!(
            answer["reason"].as_str().unwrap().contains(expected),
            "{expected}: {answer}"
        );
    }

    let mut not_a_number = scan.clone();
    not_a_number["detail"]["finding-severity-counts"] = json!({"HIGH": "many"});
    let answer = env.scan_gate(not_a_number).await;
    assert_eq!(status(&answer), "error", "{answer}");
    assert_eq!(answer["error_type"], "Archgate.MalformedEvent");
    assert!(
        answer["error_message"]
            .as_str()
            .unwrap()
            .contains("finding-severity-counts.HIGH"),
        "{answer}"
    );

    let mut not_sha256 = scan;
    not_sha256["detail"]["image-digest"] = json!("md5:abc");
    let answer = env.scan_gate(not_sha256).await;
    assert_eq!(status(&answer), "error", "{answer}");
}

#[tokio::test]
async fn scans_of_untagged_platform_manifests_find_their_release_by_digest() {
    // Given per-arch images pushed as buildx does with provenance (an index whose platform
    // manifest is untagged), and the candidate assembled from them
    let env = installation(ManifestMode::Native).await;
    env.start_builds(upload(&env, KEY).await).await;
    for arch in Arch::ALL {
        let (event, _) = env
            .finish_arch_build(TAG, arch, "SUCCEEDED", ImageShape::IndexWithAttestation)
            .await
            .unwrap();
        env.build_completed(event).await;
    }
    let candidate = env
        .release(TAG)
        .await
        .unwrap()
        .unwrap()
        .release
        .candidate
        .unwrap();

    // When ECR reports the scans of the untagged platform manifests
    let mut last = Value::Null;
    for child in &candidate.children {
        let scan = env
            .scan_image(child.digest.as_str(), &[], "COMPLETE", &[])
            .await
            .unwrap();
        last = env.scan_gate(scan).await;
    }

    // Then they are matched through the candidate and the release is published
    assert_eq!(last["phase"], "published", "{last}");
    assert!(resolve(&env, TAG).await.is_some());
}
