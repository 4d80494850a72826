//! Releases in every state, the artifacts people attach to them, the workloads that use them,
//! and what a registry client sees of them: for the release-level retention tests.

use crate::{candidate_ready, status, upload, ImageShape, LocalFinding};
use archgate::build_variables::{IMAGE_ARCH, IMAGE_REPO_NAME, IMAGE_TAG, RELEASE_TAG};
use archgate::domain::oci::{ACCEPTED_MEDIA_TYPES, OCI_INDEX, OCI_MANIFEST};
use archgate::domain::{Arch, BuildRole, Digest, Phase, Release};
use archgate_cli::local::LocalEnv;
use archgate_testkit::builder::{state_change_event, with_exported, EventTemplate};
use aws_sdk_ecr::types::ImageIdentifier;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

pub const CRITICAL: LocalFinding = LocalFinding {
    id: "CVE-2024-3094",
    severity: "CRITICAL",
    package: "xz-utils",
};

/// The release's record in the ledger.
pub async fn record(env: &LocalEnv, tag: &str) -> Release {
    env.release(tag)
        .await
        .expect("ledger read")
        .unwrap_or_else(|| panic!("no release {tag} in the ledger"))
        .release
}

/// Drives a release through upload, builds, index and passing scans.
pub async fn publish(env: &LocalEnv, tag: &str) -> Release {
    candidate_ready(env, tag).await;
    scan_both(env, tag, &[]).await;
    published(env, tag).await
}

/// [`publish`], its amd64 build pushing exactly `amd64` (an image manifest another release
/// already pushed, byte for byte).
pub async fn publish_with_amd64(env: &LocalEnv, tag: &str, amd64: &[u8]) -> Release {
    let answer = env
        .start_builds(upload(env, &format!("releases/{tag}.zip")).await)
        .await;
    assert_eq!(status(&answer), "applied", "{tag}: {answer}");
    let event = build_pushing(env, tag, Arch::Amd64, amd64).await;
    let answer = env.build_completed(event).await;
    assert_ne!(status(&answer), "error", "{tag}: {answer}");
    let (event, _) = env
        .finish_arch_build(tag, Arch::Arm64, "SUCCEEDED", ImageShape::Manifest)
        .await
        .expect("local build");
    let answer = env.build_completed(event).await;
    assert_ne!(status(&answer), "error", "{tag}: {answer}");
    scan_both(env, tag, &[]).await;
    published(env, tag).await
}

/// A release whose amd64 image has a critical finding.
pub async fn block(env: &LocalEnv, tag: &str) -> Release {
    candidate_ready(env, tag).await;
    scan_both(env, tag, &[CRITICAL]).await;
    let release = record(env, tag).await;
    assert_eq!(release.phase(), Phase::Blocked, "{tag}");
    release
}

/// A release whose arm64 build pushed its image and whose amd64 build failed.
pub async fn fail(env: &LocalEnv, tag: &str) -> Release {
    let answer = env
        .start_builds(upload(env, &format!("releases/{tag}.zip")).await)
        .await;
    assert_eq!(status(&answer), "applied", "{tag}: {answer}");
    for (arch, outcome) in [(Arch::Arm64, "SUCCEEDED"), (Arch::Amd64, "FAILED")] {
        let (event, _) = env
            .finish_arch_build(tag, arch, outcome, ImageShape::Manifest)
            .await
            .expect("local build");
        let answer = env.build_completed(event).await;
        assert_ne!(status(&answer), "error", "{tag}: {answer}");
    }
    let release = record(env, tag).await;
    assert_eq!(release.phase(), Phase::Failed, "{tag}");
    release
}

/// A release uploaded and building: its amd64 image is pushed, its arm64 build still runs.
pub async fn in_flight(env: &LocalEnv, tag: &str) -> Release {
    let answer = env
        .start_builds(upload(env, &format!("releases/{tag}.zip")).await)
        .await;
    assert_eq!(status(&answer), "applied", "{tag}: {answer}");
    let (event, _) = env
        .finish_arch_build(tag, Arch::Amd64, "SUCCEEDED", ImageShape::Manifest)
        .await
        .expect("local build");
    let answer = env.build_completed(event).await;
    assert_ne!(status(&answer), "error", "{tag}: {answer}");
    let release = record(env, tag).await;
    assert!(
        release.phase().is_in_flight(),
        "{tag}: {:?}",
        release.phase()
    );
    release
}

async fn published(env: &LocalEnv, tag: &str) -> Release {
    let release = record(env, tag).await;
    assert_eq!(release.phase(), Phase::Published, "{tag}");
    release
}

pub async fn scan_both(env: &LocalEnv, tag: &str, amd64: &[LocalFinding]) {
    for (arch, findings) in [(Arch::Amd64, amd64), (Arch::Arm64, &[][..])] {
        let event = env
            .scan_arch_image(tag, arch, "COMPLETE", findings)
            .await
            .expect("local scan");
        let answer = env.scan_gate(event).await;
        assert_ne!(status(&answer), "error", "{tag}: {answer}");
    }
}

/// Plays one arch build that pushes `manifest` under the release's arch tag; returns the
/// state-change event CodeBuild would send.
async fn build_pushing(env: &LocalEnv, tag: &str, arch: Arch, manifest: &[u8]) -> Value {
    let digest = put(env, manifest, OCI_MANIFEST, Some(&format!("{tag}-{arch}"))).await;
    let role = BuildRole::arch(arch);
    let build_id = record(env, tag)
        .await
        .build(role)
        .build_id
        .clone()
        .expect("the build was started");
    let template = match arch {
        Arch::Amd64 => EventTemplate::Amd64,
        Arch::Arm64 => EventTemplate::Arm64,
    };
    let project = env.config.project_for(role).expect("arch projects");
    let environment = [
        (IMAGE_REPO_NAME, env.config.repository.as_str()),
        (IMAGE_TAG, &format!("{tag}-{arch}")),
        (IMAGE_ARCH, arch.as_str()),
        (RELEASE_TAG, tag),
    ]
    .map(|(name, value)| (name.to_owned(), value.to_owned()));
    with_exported(
        state_change_event(template, project, &build_id, "SUCCEEDED", &environment),
        &archgate_testkit::builder::exported_by_build(arch, &digest),
    )
}

/// The index a release published, and its children by architecture.
pub fn index_of(release: &Release) -> (Digest, BTreeMap<Arch, Digest>) {
    let candidate = release
        .candidate
        .as_ref()
        .expect("the release has an index");
    let children = candidate
        .children
        .iter()
        .map(|c| (c.arch, c.digest.clone()))
        .collect();
    (candidate.digest.clone(), children)
}

/// Pushes a manifest, optionally tagged; returns its digest. A manifest already there just
/// gains the tag.
pub async fn put(env: &LocalEnv, body: &[u8], media_type: &str, tag: Option<&str>) -> Digest {
    let digest = Digest::of(body);
    let result = env
        .clients
        .ecr
        .put_image()
        .repository_name(&env.config.repository)
        .image_manifest(String::from_utf8(body.to_vec()).expect("a manifest is text"))
        .image_manifest_media_type(media_type)
        .image_digest(digest.as_str())
        .set_image_tag(tag.map(str::to_owned))
        .send()
        .await;
    if let Err(e) = result {
        match aws_sdk_ecr::Error::from(e) {
            aws_sdk_ecr::Error::ImageAlreadyExistsException(_) => {}
            other => panic!("PutImage: {other:?}"),
        }
    }
    digest
}

/// An OCI 1.1 referrer (an SBOM) of `subject`, untagged, as `oras attach` pushes it.
pub async fn attach_sbom(env: &LocalEnv, subject: &Digest) -> Digest {
    let body = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/spdx+json",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": Digest::of(b"{}").as_str(), "size": 2},
        "layers": [{"mediaType": "application/spdx+json", "digest": Digest::of(format!("sbom of {subject}").as_bytes()).as_str(), "size": 10}],
        "subject": {"mediaType": OCI_INDEX, "digest": subject.as_str(), "size": 100}});
    put(env, &bytes(&body), OCI_MANIFEST, None).await
}

/// A cosign-style signature (`kind` "sig") or attestation ("att") of `subject`, tagged
/// `sha256-<hex>.<kind>` as cosign pushes it.
pub async fn cosign(env: &LocalEnv, subject: &Digest, kind: &str) -> (String, Digest) {
    let tag = format!("sha256-{}.{kind}", subject.hex());
    let body = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": Digest::of(tag.as_bytes()).as_str(), "size": 10},
        "layers": [{"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json", "digest": Digest::of(format!("{kind} payload of {subject}").as_bytes()).as_str(), "size": 200}]});
    let digest = put(env, &bytes(&body), OCI_MANIFEST, Some(&tag)).await;
    (tag, digest)
}

/// Gives an image another tag (a hand-made tag, a moving tag).
pub async fn add_tag(env: &LocalEnv, digest: &Digest, tag: &str) {
    let (media_type, body) = manifest(env, digest)
        .await
        .unwrap_or_else(|| panic!("{digest} is not in the repository"));
    put(env, &body, &media_type, Some(tag)).await;
}

fn bytes(body: &Value) -> Vec<u8> {
    serde_json::to_vec(body).expect("JSON serialises")
}

/// The repository as a registry client sees it: every tag with its image, every digest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inventory {
    pub tags: BTreeMap<String, Digest>,
    pub digests: BTreeSet<Digest>,
}

impl Inventory {
    pub async fn read(env: &LocalEnv) -> Self {
        let mut inventory = Inventory::default();
        let mut pages = env
            .clients
            .ecr
            .describe_images()
            .repository_name(&env.config.repository)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            for image in page.expect("DescribeImages").image_details() {
                let digest =
                    Digest::parse(image.image_digest().expect("a digest")).expect("a valid digest");
                for tag in image.image_tags() {
                    inventory.tags.insert(tag.clone(), digest.clone());
                }
                inventory.digests.insert(digest);
            }
        }
        inventory
    }

    pub fn holds(&self, digest: &Digest) -> bool {
        self.digests.contains(digest)
    }

    /// The tags that start with the release's tag (its own and its internal ones).
    pub fn tags_of(&self, tag: &str) -> Vec<&str> {
        self.tags
            .keys()
            .filter(|t| *t == tag || t.strip_prefix(tag).is_some_and(|s| s.starts_with('-')))
            .map(String::as_str)
            .collect()
    }
}

/// A manifest by digest (or tag), as a registry client pulls it: media type and bytes.
pub async fn manifest(env: &LocalEnv, digest: &Digest) -> Option<(String, Vec<u8>)> {
    pull(
        env,
        ImageIdentifier::builder()
            .image_digest(digest.as_str())
            .build(),
    )
    .await
}

async fn pull(env: &LocalEnv, id: ImageIdentifier) -> Option<(String, Vec<u8>)> {
    let found = env
        .clients
        .ecr
        .batch_get_image()
        .repository_name(&env.config.repository)
        .image_ids(id)
        .set_accepted_media_types(Some(
            ACCEPTED_MEDIA_TYPES
                .iter()
                .map(|m| (*m).to_owned())
                .collect(),
        ))
        .send()
        .await
        .expect("BatchGetImage");
    let image = found.images().first()?;
    let body = image.image_manifest()?.as_bytes().to_vec();
    let media_type = image
        .image_manifest_media_type()
        .map(str::to_owned)
        .or_else(|| {
            serde_json::from_slice::<Value>(&body).ok()?["mediaType"]
                .as_str()
                .map(str::to_owned)
        })
        .unwrap_or_default();
    Some((media_type, body))
}

/// What `docker pull --platform linux/<arch> <repo>:<tag>` needs: the tag resolves to
/// `index`, the index lists an image for linux/amd64 and linux/arm64, and each of those
/// image manifests is in the repository, by digest, with a config and layers. (The local
/// builder pushes manifests without layer blobs, so layer availability is not checked.)
pub async fn pulls_on_both_platforms(
    env: &LocalEnv,
    tag: &str,
    index: &Digest,
) -> Result<(), String> {
    let (media_type, body) = pull(env, ImageIdentifier::builder().image_tag(tag).build())
        .await
        .ok_or_else(|| format!("{tag} does not resolve"))?;
    if Digest::of(&body) != *index {
        return Err(format!(
            "{tag} resolves to {} instead of {index}",
            Digest::of(&body)
        ));
    }
    if media_type != OCI_INDEX {
        return Err(format!("{tag} is a {media_type}, not an index"));
    }
    let document: Value = serde_json::from_slice(&body).map_err(|e| format!("{tag}: {e}"))?;
    for arch in Arch::ALL {
        let (architecture, _) = arch.oci_platform();
        let child = document["manifests"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|m| {
                m["platform"]["os"] == "linux" && m["platform"]["architecture"] == architecture
            })
            .and_then(|m| m["digest"].as_str())
            .ok_or_else(|| format!("{tag} lists no linux/{architecture} image"))?;
        let child = Digest::parse(child).map_err(|e| format!("{tag}: {e}"))?;
        let (_, body) = manifest(env, &child)
            .await
            .ok_or_else(|| format!("{tag}: its linux/{architecture} image {child} is gone"))?;
        let image: Value = serde_json::from_slice(&body).map_err(|e| format!("{child}: {e}"))?;
        if image["config"]["digest"].as_str().is_none()
            || image["layers"].as_array().is_none_or(Vec::is_empty)
        {
            return Err(format!("{tag}: {child} is not a runnable image manifest"));
        }
    }
    Ok(())
}

/// `<account>.dkr.ecr.<region>.amazonaws.com/<repository>`, as workloads name images.
pub fn image_reference(env: &LocalEnv) -> String {
    format!(
        "{}.dkr.ecr.{}.amazonaws.com/{}",
        archgate_testkit::emulator::ACCOUNT,
        env.region(),
        env.config.repository
    )
}

/// Registers an ECS task definition whose one container runs `image`; returns its ARN.
pub async fn register_task_definition(env: &LocalEnv, family: &str, image: &str) -> String {
    env.clients
        .ecs()
        .register_task_definition()
        .family(family)
        .container_definitions(
            aws_sdk_ecs::types::ContainerDefinition::builder()
                .name("app")
                .image(image)
                .memory(128)
                .build(),
        )
        .send()
        .await
        .expect("RegisterTaskDefinition")
        .task_definition()
        .and_then(|d| d.task_definition_arn())
        .expect("a task definition ARN")
        .to_owned()
}

/// Creates a Lambda function packaged as the image `image`; returns its ARN.
pub async fn create_image_function(env: &LocalEnv, name: &str, image: &str) -> String {
    let role =
        archgate_testkit::emulator::create_lambda_role(&env.endpoint, &format!("{name}-role"))
            .expect("CreateRole");
    env.clients
        .lambda()
        .create_function()
        .function_name(name)
        .role(role)
        .package_type(aws_sdk_lambda::types::PackageType::Image)
        .code(
            aws_sdk_lambda::types::FunctionCode::builder()
                .image_uri(image)
                .build(),
        )
        .send()
        .await
        .expect("CreateFunction")
        .function_arn()
        .expect("a function ARN")
        .to_owned()
}
