//! The candidate OCI image index: each build's image referenced by its exact bytes, the
//! platform each build reported, and the same index from the same images.

use archgate::domain::oci::{
    build_index, platform_image, ImagePlatform, IndexAnnotations, OciError, RawManifest, OCI_INDEX,
    OCI_MANIFEST, VERSION_ANNOTATION,
};
use archgate::domain::{Arch, Digest};
use serde_json::{json, Value};

fn manifest(arch: &str) -> RawManifest {
    let body = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": Digest::of(arch.as_bytes()).as_str(), "size": 3},
        "layers": []
    });
    RawManifest {
        media_type: Some(OCI_MANIFEST.into()),
        bytes: serde_json::to_vec(&body).unwrap(),
    }
}

#[test]
fn single_platform_manifests_are_referenced_by_their_exact_bytes() {
    let raw = manifest("amd64");
    let image = platform_image(Arch::Amd64, &raw).unwrap();
    assert_eq!(image.digest, Digest::of(&raw.bytes));
    assert_eq!(image.size, raw.bytes.len() as u64);
}

#[test]
fn index_is_deterministic_and_declares_the_platform_each_build_reported() {
    let amd = platform_image(Arch::Amd64, &manifest("amd64")).unwrap();
    let mut arm = platform_image(Arch::Arm64, &manifest("arm64")).unwrap();
    arm.platform = ImagePlatform::parse(Arch::Arm64, "linux/arm64/v8").unwrap();
    let annotations = IndexAnnotations {
        created: "2026-12-01T10:00:00Z".into(),
        source: "s3://sources/releases/app-1.zip".into(),
        revision: "v1".into(),
        version: "app-1".into(),
    };
    let one = build_index(&annotations, &[arm.clone(), amd.clone()]);
    let two = build_index(&annotations, &[amd, arm]);
    assert_eq!(one, two);
    let doc: Value = serde_json::from_slice(&one.bytes).unwrap();
    assert_eq!(doc["annotations"][VERSION_ANNOTATION], "app-1");
    assert!(doc["annotations"]
        .get("org.opencontainers.image.ref.name")
        .is_none());
    assert_eq!(
        doc["manifests"][0]["platform"],
        json!({"architecture": "amd64", "os": "linux"})
    );
    assert_eq!(
        doc["manifests"][1]["platform"],
        json!({"architecture": "arm64", "os": "linux", "variant": "v8"})
    );
}

// Before, every arm64 entry said `variant: v8`, whatever the image's config said.
#[test]
fn an_image_whose_build_reported_no_variant_is_declared_without_one() {
    let arm = platform_image(Arch::Arm64, &manifest("arm64")).unwrap();
    let amd = platform_image(Arch::Amd64, &manifest("amd64")).unwrap();
    let annotations = IndexAnnotations {
        created: "2026-12-01T10:00:00Z".into(),
        source: "s3://sources/releases/app-1.zip".into(),
        revision: "v1".into(),
        version: "app-1".into(),
    };
    let doc: Value = serde_json::from_slice(&build_index(&annotations, &[amd, arm]).bytes).unwrap();
    assert_eq!(
        doc["manifests"][1]["platform"],
        json!({"architecture": "arm64", "os": "linux"})
    );
}

#[test]
fn a_reported_platform_must_be_the_builds_own_architecture_on_linux() {
    assert_eq!(
        ImagePlatform::parse(Arch::Amd64, "linux/amd64"),
        Ok(ImagePlatform::of_arch(Arch::Amd64))
    );
    for refused in [
        "linux/amd64/v8",
        "windows/arm64",
        "linux/arm64/v8/x",
        "linux/arm64/V8",
        "linux/arm64/",
        "linux/arm64/averyverylongvariant",
        "",
    ] {
        assert!(
            ImagePlatform::parse(Arch::Arm64, refused).is_err(),
            "{refused}"
        );
    }
}

#[test]
fn buildx_index_contributes_its_platform_manifest_and_attestation() {
    let platform_digest = Digest::of(b"platform");
    let attestation = json!({
        "mediaType": OCI_MANIFEST, "digest": Digest::of(b"att").as_str(), "size": 10,
        "platform": {"architecture": "unknown", "os": "unknown"},
        "annotations": {"vnd.docker.reference.digest": platform_digest.as_str(),
                        "vnd.docker.reference.type": "attestation-manifest"}
    });
    let index = json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": platform_digest.as_str(), "size": 500,
             "platform": {"architecture": "arm64", "os": "linux"}},
            attestation
        ]
    });
    let raw = RawManifest {
        media_type: Some(OCI_INDEX.into()),
        bytes: serde_json::to_vec(&index).unwrap(),
    };
    let image = platform_image(Arch::Arm64, &raw).unwrap();
    assert_eq!(image.digest, platform_digest);
    assert_eq!(image.size, 500);
    assert_eq!(image.attestations, vec![attestation]);
    assert_eq!(
        platform_image(Arch::Amd64, &raw),
        Err(OciError::NoPlatformManifest { arch: Arch::Amd64 })
    );
}

#[test]
fn rejects_what_is_not_an_image() {
    let raw = RawManifest {
        media_type: None,
        bytes: b"not json".to_vec(),
    };
    assert!(matches!(
        platform_image(Arch::Amd64, &raw),
        Err(OciError::NotJson { .. })
    ));
    let raw = RawManifest {
        media_type: Some("application/vnd.cncf.helm.config.v1+json".into()),
        bytes: b"{}".to_vec(),
    };
    assert!(matches!(
        platform_image(Arch::Amd64, &raw),
        Err(OciError::UnsupportedMediaType { .. })
    ));
}
