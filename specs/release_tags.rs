//! Release tags: derived from the uploaded object's file name, restricted to ECR's tag
//! alphabet and length, and never a name archgate or a signer uses for something else.

use archgate::domain::notice::RejectReason;
use archgate::domain::tag::{TagError, MAX_TAG_LEN};
use archgate::domain::ReleaseTag;
use proptest::prelude::*;

#[test]
fn file_stem_becomes_the_tag() {
    let tag = ReleaseTag::from_object_key("releases/myapp-1.4.2.zip", "releases/").unwrap();
    assert_eq!(tag.as_str(), "myapp-1.4.2");
    assert_eq!(tag.candidate_tag(), "myapp-1.4.2-candidate");
}

#[test]
fn nested_keys_use_the_file_name() {
    let tag = ReleaseTag::from_object_key("releases/team/app_2.zip", "releases/").unwrap();
    assert_eq!(tag.as_str(), "app_2");
}

#[test]
fn foreign_characters_are_replaced_and_leading_junk_dropped() {
    let tag = ReleaseTag::from_object_key("releases/.._my app+ü.zip", "releases/").unwrap();
    assert_eq!(tag.as_str(), "my-app--");
}

#[test]
fn rejects_keys_outside_the_contract() {
    assert!(matches!(
        ReleaseTag::from_object_key("incoming/a.zip", "releases/"),
        Err(TagError::OutsidePrefix { .. })
    ));
    assert!(matches!(
        ReleaseTag::from_object_key("releases/a.tar.gz", "releases/"),
        Err(TagError::NotZip { .. })
    ));
    assert!(matches!(
        ReleaseTag::from_object_key("releases/%%%.zip", "releases/"),
        Err(TagError::EmptyStem { .. })
    ));
    assert!(matches!(
        ReleaseTag::from_object_key("releases/.zip", "releases/"),
        Err(TagError::EmptyStem { .. })
    ));
    for key in [
        "releases/../../etc/passwd.zip",
        "releases//app.zip",
        "releases/./app.zip",
        "releases/app\u{202e}piz.zip",
        "releases/app\n.zip",
    ] {
        assert!(
            matches!(
                ReleaseTag::from_object_key(key, "releases/"),
                Err(TagError::SuspiciousKey { .. })
            ),
            "{key:?}"
        );
    }
}

#[test]
fn long_stems_are_cut_so_the_candidate_tag_fits() {
    let key = format!("releases/{}.zip", "a".repeat(300));
    let tag = ReleaseTag::from_object_key(&key, "releases/").unwrap();
    assert_eq!(tag.candidate_tag().len(), MAX_TAG_LEN);
}

#[test]
fn internal_moving_and_cache_names_are_reserved() {
    let moving = vec!["latest".to_owned()];
    let reserved = |tag: &str| ReleaseTag::parse(tag).unwrap().reserved(&moving);
    assert!(matches!(
        reserved("app-amd64"),
        Some(RejectReason::InternalSuffix { .. })
    ));
    assert!(matches!(
        reserved("app-arm64"),
        Some(RejectReason::InternalSuffix { .. })
    ));
    assert!(matches!(
        reserved("app-candidate"),
        Some(RejectReason::InternalSuffix { .. })
    ));
    assert!(matches!(
        reserved("latest"),
        Some(RejectReason::MovingTag { .. })
    ));
    assert!(matches!(
        reserved("buildcache"),
        Some(RejectReason::CacheRef { .. })
    ));
    assert_eq!(reserved("app"), None);
    assert_eq!(reserved("app-amd64-1"), None);
    assert_eq!(reserved("latest-1.0"), None);
}

#[test]
fn tags_that_name_another_image_by_digest_are_reserved() {
    let hex = "a".repeat(64);
    let reserved = |tag: &str| ReleaseTag::parse(tag).unwrap().reserved(&[]);
    for tag in [
        format!("sha256-{hex}"),
        format!("sha256-{hex}.sig"),
        format!("sha256-{hex}.att"),
        format!("sha256-{hex}.sbom"),
        format!("sha256-{hex}.whatever"),
        format!("SHA256-{}", "A".repeat(64)),
    ] {
        assert!(
            matches!(reserved(&tag), Some(RejectReason::ReferrerTag { .. })),
            "{tag}"
        );
    }
    // Too short to be a digest, or not hexadecimal: an ordinary name.
    assert_eq!(reserved("sha256-abc"), None);
    assert_eq!(reserved(&format!("sha256-{}", "g".repeat(64))), None);
    assert_eq!(reserved("sha256"), None);
}

proptest! {
    #[test]
    fn every_derived_tag_is_valid_for_ecr(stem in "\\PC{0,200}") {
        let key = format!("releases/{stem}.zip");
        if let Ok(tag) = ReleaseTag::from_object_key(&key, "releases/") {
            prop_assert!(ReleaseTag::parse(tag.as_str()).is_ok());
            prop_assert!(tag.candidate_tag().len() <= MAX_TAG_LEN);
        }
    }
}
