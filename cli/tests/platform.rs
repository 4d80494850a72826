//! The index's platforms are what each build reported of the image it pushed
//! (`IMAGE_PLATFORM`), not a variant assumed for the architecture.

use archgate::build_variables::{IMAGE_DIGEST, IMAGE_PLATFORM};
use archgate::domain::{Arch, ReleaseTag};
use archgate_cli::local::{sample_build_context, LocalEnv};
use archgate_testkit::builder::{with_exported, ImageShape};
use aws_sdk_ecr::types::ImageIdentifier;
use serde_json::{json, Value};

/// Builds `tag` with the arm64 build reporting `arm64_platform`, each completion replayed
/// through the binary; the candidate index's platforms in arch order.
async fn platforms_of(env: &LocalEnv, tag: &str, arm64_platform: &str) -> Vec<Value> {
    env.start_builds(
        env.upload(&format!("releases/{tag}.zip"), sample_build_context(tag))
            .await
            .unwrap(),
    )
    .await;
    for arch in Arch::ALL {
        let (event, pushed) = env
            .finish_arch_build(tag, arch, "SUCCEEDED", ImageShape::Manifest)
            .await
            .unwrap();
        let digest = pushed.expect("the build pushed its image").digest;
        let platform = match arch {
            Arch::Amd64 => "linux/amd64",
            Arch::Arm64 => arm64_platform,
        };
        let event = with_exported(
            event,
            &[
                (IMAGE_DIGEST.to_owned(), digest.to_string()),
                (IMAGE_PLATFORM.to_owned(), platform.to_owned()),
            ],
        );
        let file = std::env::temp_dir().join(format!(
            "archgate-platform-{}-{tag}-{arch}.json",
            std::process::id()
        ));
        std::fs::write(&file, event.to_string()).unwrap();
        let replay = crate::operator(env)
            .arg("replay")
            .arg(&file)
            .output()
            .expect("archgate runs");
        let _ = std::fs::remove_file(&file);
        let answer = String::from_utf8_lossy(&replay.stdout);
        assert!(replay.status.success(), "{answer}");
        assert!(answer.contains("\"applied\""), "{answer}");
    }
    let candidate = ReleaseTag::parse(tag).unwrap().candidate_tag();
    let images = env
        .clients
        .ecr
        .batch_get_image()
        .repository_name(&env.config.repository)
        .image_ids(ImageIdentifier::builder().image_tag(&candidate).build())
        .send()
        .await
        .unwrap();
    let manifest = images.images()[0]
        .image_manifest()
        .expect("the candidate index");
    let index: Value = serde_json::from_str(manifest).unwrap();
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|entry| entry["platform"]["os"] == "linux")
        .map(|entry| entry["platform"].clone())
        .collect()
}

// Before, the index said `arm64/v8` for every arm64 image, whatever its config said.
#[tokio::test]
async fn the_index_declares_each_image_as_its_build_reported_it() {
    // Given an installation in eu-west-1
    let env = crate::installation().await;

    // When one release's arm64 build reports no variant and another's reports v8
    let plain = platforms_of(&env, "myapp-9.0.0", "linux/arm64").await;
    let v8 = platforms_of(&env, "myapp-9.0.1", "linux/arm64/v8").await;

    // Then each index says exactly that of its arm64 image, and amd64 is plain linux/amd64
    let amd64 = json!({"architecture": "amd64", "os": "linux"});
    assert_eq!(
        plain,
        vec![
            amd64.clone(),
            json!({"architecture": "arm64", "os": "linux"})
        ]
    );
    assert_eq!(
        v8,
        vec![
            amd64,
            json!({"architecture": "arm64", "os": "linux", "variant": "v8"})
        ]
    );
}

#[tokio::test]
async fn a_build_that_reports_another_architecture_is_not_believed() {
    // Given an installation in eu-west-1
    let env = crate::installation().await;

    // When the arm64 build reports an amd64 platform
    let platforms = platforms_of(&env, "myapp-9.1.0", "linux/amd64").await;

    // Then the index declares only what the build was started for: linux/arm64
    assert_eq!(
        platforms[1],
        json!({"architecture": "arm64", "os": "linux"})
    );
}
