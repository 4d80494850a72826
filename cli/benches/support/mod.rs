//! What the retention benchmarks on the emulator share: images as builds push them, the
//! ledger record of a published release, and filling a repository.

use archgate::domain::oci::{DOCKER_MANIFEST, OCI_INDEX};
use archgate::domain::release::{Candidate, CandidateChild, EventKind, Publication};
use archgate::domain::{
    Arch, BuildStatus, Digest, ManifestMode, Millis, Release, ReleaseKey, ReleaseTag, SourceObject,
};
use std::collections::HashSet;
use tokio::task::JoinSet;

pub struct Image {
    pub tag: Option<String>,
    /// The children of an index.
    pub children: Vec<Digest>,
    pub media_type: &'static str,
    pub body: String,
}

pub fn child(name: &str) -> Image {
    let body = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                   "digest": Digest::of(format!("config {name}").as_bytes()).to_string(), "size": 512},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "digest": Digest::of(format!("layer {name}").as_bytes()).to_string(), "size": 4096}],
    })
    .to_string();
    Image {
        tag: None,
        children: Vec::new(),
        media_type: DOCKER_MANIFEST,
        body,
    }
}

pub fn index(children: &[&Image], tag: Option<String>) -> Image {
    let manifests: Vec<serde_json::Value> = children
        .iter()
        .zip(["amd64", "arm64"])
        .map(|(c, arch)| {
            serde_json::json!({"mediaType": c.media_type, "digest": Digest::of(c.body.as_bytes()).to_string(),
                               "size": c.body.len(), "platform": {"os": "linux", "architecture": arch}})
        })
        .collect();
    let body =
        serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests})
            .to_string();
    Image {
        tag,
        children: children
            .iter()
            .map(|c| Digest::of(c.body.as_bytes()))
            .collect(),
        media_type: OCI_INDEX,
        body,
    }
}

/// The ledger record of a published release whose index is `index`.
pub fn published(repository: &str, index: &Image, now: Millis) -> Release {
    let tag = ReleaseTag::parse(index.tag.as_deref().expect("a release index is tagged"))
        .expect("a valid tag");
    let source = SourceObject {
        bucket: "sources".into(),
        key: format!("releases/{tag}.zip"),
        version_id: Some("1".into()),
        etag: None,
        size: None,
        uploaded_at: Some(now),
        sequencer: None,
    };
    let mut release = Release::new(
        ReleaseKey::new(repository, tag.clone()),
        source,
        ManifestMode::Native,
        now,
    );
    for (arch, child) in Arch::ALL.iter().zip(&index.children) {
        let build = match arch {
            Arch::Amd64 => &mut release.amd64,
            Arch::Arm64 => &mut release.arm64,
        };
        build.build_id = Some(format!("{tag}-{arch}:1"));
        build.status = Some(BuildStatus::Succeeded);
        build.image_digest = Some(child.clone());
    }
    release.candidate = Some(Candidate {
        tag: tag.candidate_tag(),
        digest: Digest::of(index.body.as_bytes()),
        children: Arch::ALL
            .iter()
            .zip(&index.children)
            .map(|(arch, digest)| CandidateChild {
                arch: *arch,
                digest: digest.clone(),
            })
            .collect(),
        manifest: Some(index.body.clone()),
        media_type: Some(OCI_INDEX.to_owned()),
    });
    release.published = Some(Publication {
        tags: vec![tag.to_string()],
        at: now,
    });
    release.emitted = vec![
        EventKind::Started,
        EventKind::CandidateReady,
        EventKind::Published,
    ];
    release
}

pub async fn fill(ecr: &aws_sdk_ecr::Client, name: &str, images: &[Image]) {
    ecr.create_repository()
        .repository_name(name)
        .send()
        .await
        .expect("the repository is created");
    // Children first, 16 pushes at a time.
    for chunk in images.chunks(16) {
        let mut pushes = JoinSet::new();
        for image in chunk {
            let request = ecr
                .put_image()
                .repository_name(name)
                .set_image_tag(image.tag.clone())
                .image_manifest(&image.body)
                .image_manifest_media_type(image.media_type)
                .image_digest(Digest::of(image.body.as_bytes()).as_str());
            pushes.spawn(async move { request.send().await.map(|_| ()) });
        }
        while let Some(pushed) = pushes.join_next().await {
            pushed.expect("the push ran").expect("the image is pushed");
        }
    }
}

/// A repository's images, children before their index, and the digests that must stay:
/// `releases` published releases (a tagged index and its two children), `stale` untagged
/// indexes with their children and `strays` untagged images. Each image's content starts
/// with `prefix`, so repositories filled with different prefixes share no image.
pub fn repository_images(
    prefix: &str,
    releases: usize,
    stale: usize,
    strays: usize,
) -> (Vec<Image>, HashSet<String>) {
    let mut images = Vec::new();
    let mut needed = HashSet::new();
    for n in 0..releases + stale {
        let (a, b) = (
            child(&format!("{prefix}{n} amd64")),
            child(&format!("{prefix}{n} arm64")),
        );
        let tag = (n < releases).then(|| format!("release-{n}"));
        let top = index(&[&a, &b], tag);
        if n < releases {
            for image in [&a, &b, &top] {
                needed.insert(Digest::of(image.body.as_bytes()).to_string());
            }
        }
        images.extend([a, b, top]);
    }
    images.extend((0..strays).map(|n| child(&format!("{prefix}stray {n}"))));
    (images, needed)
}
