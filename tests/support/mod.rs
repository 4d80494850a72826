//! Shared set-up for the integration tests: each test gets its own emulator (moto's server on
//! a free loopback port), provisioned with the local configuration. A missing emulator fails
//! the test with the reason; nothing is skipped.

use archgate_cli::local::{default_config, sample_build_context, LocalEnv};
use serde_json::Value;
use std::collections::BTreeMap;

pub use archgate::domain::ManifestMode;
pub use archgate_cli::local;
pub use archgate_testkit::builder::ImageShape;

pub const TAG: &str = "myapp-1.4.2";
pub const KEY: &str = "releases/myapp-1.4.2.zip";

/// A fresh, provisioned local installation in the given manifest mode.
pub async fn installation(mode: ManifestMode) -> LocalEnv {
    match LocalEnv::start(default_config(mode)).await {
        Ok(env) => env,
        Err(e) => {
            panic!("the local AWS emulator is required for this test and could not start: {e:?}")
        }
    }
}

/// A fresh, provisioned local installation in another region than us-east-1 (S3 wants a
/// location constraint there, ARNs and events carry the region).
pub async fn installation_in(mode: ManifestMode, region: &str) -> LocalEnv {
    match LocalEnv::start_in(default_config(mode), region).await {
        Ok(env) => env,
        Err(e) => {
            panic!("the local AWS emulator is required for this test and could not start: {e:?}")
        }
    }
}

/// A fresh installation in `region` whose uploads may name repositories under `namespace`
/// (`ARCHGATE_REPOSITORY_PREFIX`).
pub async fn installation_with_namespace(namespace: &str, region: &str) -> LocalEnv {
    let config = archgate_cli::local::config_with(
        ManifestMode::Native,
        &[(archgate::config::REPOSITORY_PREFIX, namespace)],
    );
    match LocalEnv::start_in(config, region).await {
        Ok(env) => env,
        Err(e) => {
            panic!("the local AWS emulator is required for this test and could not start: {e:?}")
        }
    }
}

/// A sample from `events/`, parsed.
pub fn sample(name: &str) -> Value {
    let path = format!("{}/../events/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Uploads the sample build context and returns the S3 event for it.
pub async fn upload(env: &LocalEnv, key: &str) -> Value {
    env.upload(key, sample_build_context("myapp"))
        .await
        .expect("upload")
}

/// Calls counted since the last `take`, by `Service.Operation`.
pub fn calls(env: &LocalEnv) -> BTreeMap<String, usize> {
    env.calls.take_tally()
}

pub fn count(tally: &BTreeMap<String, usize>, operation: &str) -> usize {
    tally.get(operation).copied().unwrap_or(0)
}

pub fn status(answer: &Value) -> &str {
    answer["status"].as_str().unwrap_or("<none>")
}

/// The detail-types of the release events published so far.
pub async fn release_events(env: &LocalEnv) -> Vec<String> {
    let mut kinds: Vec<String> = env
        .release_events()
        .await
        .expect("release events")
        .iter()
        .map(|e| e["detail-type"].as_str().unwrap_or("?").to_owned())
        .collect();
    kinds.sort();
    kinds
}

use archgate::domain::Arch;
pub use archgate_cli::local::LocalFinding;

/// Drives a release (a tag, or `<repository>:<tag>`) through upload, both builds and the
/// candidate index.
pub async fn candidate_ready(env: &LocalEnv, tag: &str) {
    let answer = env
        .start_builds(upload(env, &env.upload_key(tag)).await)
        .await;
    assert_eq!(status(&answer), "applied", "{answer}");
    for arch in Arch::ALL {
        let (event, _) = env
            .finish_arch_build(tag, arch, "SUCCEEDED", ImageShape::Manifest)
            .await
            .expect("local build");
        let answer = env.build_completed(event).await;
        assert_ne!(status(&answer), "error", "{answer}");
    }
}

/// The digest a tag resolves to in the repository, if any.
pub async fn resolve(env: &LocalEnv, tag: &str) -> Option<String> {
    archgate_cli::report::resolve(&env.clients.ecr, &env.config.repository, tag).await
}

pub mod releases;
pub mod workspace;
