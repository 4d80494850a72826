//! The local builder: what `buildspecs/arch.yml` does in CodeBuild, done against the emulator.
//! It pushes a per-arch image manifest to ECR under `<tag>-<arch>` and produces the
//! "CodeBuild Build State Change" event AWS would send when the build ends.

use archgate::build_variables::{IMAGE_DIGEST, IMAGE_PLATFORM};
use archgate::domain::oci::{OCI_INDEX, OCI_MANIFEST};
use archgate::domain::{Arch, Digest, ReleaseTag};
use serde_json::{json, Value};

const AMD64_SUCCEEDED: &str = include_str!("../../events/codebuild-amd64-succeeded.json");
const ARM64_SUCCEEDED: &str = include_str!("../../events/codebuild-arm64-succeeded.json");
const MANIFEST_SUCCEEDED: &str = include_str!("../../events/codebuild-manifest-succeeded.json");

/// How the per-arch image is shaped in the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageShape {
    /// A single OCI image manifest (buildx with `--provenance=false`, as arch.yml builds).
    Manifest,
    /// What buildx pushes with provenance on: an index of the image and its attestation.
    IndexWithAttestation,
}

/// A pushed per-arch image.
#[derive(Debug, Clone)]
pub struct PushedImage {
    pub tag: String,
    pub digest: Digest,
    /// The platform manifest's digest (differs from `digest` for an index).
    pub platform_digest: Digest,
}

fn blob(seed: &str) -> Value {
    json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
           "digest": Digest::of(seed.as_bytes()).as_str(), "size": 1024 + seed.len()})
}

/// The image manifest arch.yml's `docker buildx build --push` would produce, deterministic in
/// its inputs.
pub fn image_manifest(tag: &ReleaseTag, arch: Arch, revision: &str) -> Vec<u8> {
    let config = json!({"architecture": arch.as_str(), "os": "linux",
                        "config": {"Labels": {"dev.archgate.release": tag.as_str(), "dev.archgate.revision": revision}}});
    let config_bytes = serde_json::to_vec(&config).expect("config serialises");
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": Digest::of(&config_bytes).as_str(), "size": config_bytes.len()},
        "layers": [blob("base-layer"), blob(&format!("{tag}-{arch}-{revision}-app"))]
    });
    serde_json::to_vec(&manifest).expect("manifest serialises")
}

/// What the arch buildspec exports as `IMAGE_PLATFORM` for [`image_manifest`]'s image: the
/// platform its config names (`linux/<arch>`, no variant).
pub fn image_platform(arch: Arch) -> String {
    format!("linux/{}", arch.as_str())
}

/// What a successful arch build exports: the image it pushed and that image's platform.
pub fn exported_by_build(arch: Arch, digest: &Digest) -> Vec<(String, String)> {
    vec![
        (IMAGE_DIGEST.to_owned(), digest.to_string()),
        (IMAGE_PLATFORM.to_owned(), image_platform(arch)),
    ]
}

/// Pushes a per-arch image the way a build would, returning what it pushed.
pub async fn push_arch_image(
    ecr: &aws_sdk_ecr::Client,
    repository: &str,
    tag: &ReleaseTag,
    arch: Arch,
    revision: &str,
    shape: ImageShape,
) -> Result<PushedImage, aws_sdk_ecr::Error> {
    let image_tag = tag.arch_tag(arch);
    let manifest = image_manifest(tag, arch, revision);
    let platform_digest = Digest::of(&manifest);
    let (architecture, variant) = arch.oci_platform();
    let body = match shape {
        ImageShape::Manifest => {
            put(ecr, repository, Some(&image_tag), &manifest, OCI_MANIFEST).await?;
            manifest.clone()
        }
        ImageShape::IndexWithAttestation => {
            // The platform manifest and the attestation are pushed untagged, by digest.
            put(ecr, repository, None, &manifest, OCI_MANIFEST).await?;
            let attestation = serde_json::to_vec(&json!({
                "schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           "digest": Digest::of(b"{}").as_str(), "size": 2},
                "layers": [{"mediaType": "application/vnd.in-toto+json",
                            "digest": Digest::of(format!("provenance-{image_tag}").as_bytes()).as_str(), "size": 512,
                            "annotations": {"in-toto.io/predicate-type": "https://slsa.dev/provenance/v0.2"}}]
            }))
            .expect("attestation serialises");
            put(ecr, repository, None, &attestation, OCI_MANIFEST).await?;
            let mut platform = json!({"architecture": architecture, "os": "linux"});
            if let Some(variant) = variant {
                platform["variant"] = json!(variant);
            }
            let index = serde_json::to_vec(&json!({
                "schemaVersion": 2, "mediaType": OCI_INDEX,
                "manifests": [
                    {"mediaType": OCI_MANIFEST, "digest": platform_digest.as_str(), "size": manifest.len(),
                     "platform": platform},
                    {"mediaType": OCI_MANIFEST, "digest": Digest::of(&attestation).as_str(), "size": attestation.len(),
                     "platform": {"architecture": "unknown", "os": "unknown"},
                     "annotations": {"vnd.docker.reference.digest": platform_digest.as_str(),
                                     "vnd.docker.reference.type": "attestation-manifest"}}
                ]
            }))
            .expect("index serialises");
            put(ecr, repository, Some(&image_tag), &index, OCI_INDEX).await?;
            index
        }
    };
    Ok(PushedImage {
        tag: image_tag,
        digest: Digest::of(&body),
        platform_digest,
    })
}

async fn put(
    ecr: &aws_sdk_ecr::Client,
    repository: &str,
    tag: Option<&str>,
    body: &[u8],
    media_type: &str,
) -> Result<(), aws_sdk_ecr::Error> {
    let result = ecr
        .put_image()
        .repository_name(repository)
        .set_image_tag(tag.map(str::to_owned))
        .image_manifest(String::from_utf8_lossy(body))
        .image_manifest_media_type(media_type)
        .image_digest(Digest::of(body).as_str())
        .send()
        .await;
    match result {
        Ok(_) => Ok(()),
        Err(e) => match aws_sdk_ecr::Error::from(e) {
            aws_sdk_ecr::Error::ImageAlreadyExistsException(_) => Ok(()),
            other => Err(other),
        },
    }
}

/// Which sample the event is shaped after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventTemplate {
    Amd64,
    Arm64,
    Manifest,
}

/// A "CodeBuild Build State Change" event for a build, in the exact shape of `events/`.
pub fn state_change_event(
    template: EventTemplate,
    project: &str,
    build_id: &str,
    status: &str,
    environment: &[(String, String)],
) -> Value {
    let sample = match template {
        EventTemplate::Amd64 => AMD64_SUCCEEDED,
        EventTemplate::Arm64 => ARM64_SUCCEEDED,
        EventTemplate::Manifest => MANIFEST_SUCCEEDED,
    };
    let mut event: Value = serde_json::from_str(sample).expect("sample events are JSON");
    // CodeBuild ids are `project:uuid`; the event carries the ARN form.
    let arn = if build_id.starts_with("arn:") {
        build_id.to_owned()
    } else {
        format!("arn:aws:codebuild:eu-west-1:123456789012:build/{build_id}")
    };
    event["id"] = json!(Digest::of(format!("{arn}{status}").as_bytes()).hex()[..36].to_owned());
    event["resources"] = json!([arn]);
    let detail = &mut event["detail"];
    detail["build-status"] = json!(status);
    detail["project-name"] = json!(project);
    detail["build-id"] = json!(arn);
    // The samples show what a finished build exports; a state change carries what this
    // build exported, added by [`with_exported`].
    if let Some(information) = detail["additional-information"].as_object_mut() {
        information.remove("exported-environment-variables");
    }
    detail["additional-information"]["environment"]["environment-variables"] = Value::Array(
        environment
            .iter()
            .map(|(name, value)| json!({"name": name, "type": "PLAINTEXT", "value": value}))
            .collect(),
    );
    event
}

/// Adds the buildspec's exported variables (`IMAGE_DIGEST`) to a final state-change event,
/// as CodeBuild reports them.
pub fn with_exported(mut event: Value, exported: &[(String, String)]) -> Value {
    event["detail"]["additional-information"]["exported-environment-variables"] = Value::Array(
        exported
            .iter()
            .map(|(name, value)| json!({"name": name, "value": value}))
            .collect(),
    );
    event
}
