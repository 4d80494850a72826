#![no_main]
//! Untrusted bytes → CodeBuild state change parsing, release identification, and the fact on
//! a release whose attempt 2 has not recorded its builds yet: a build of any other attempt
//! (or one that names none) never fills its empty slots.
use archgate::domain::{decide, Decision, Fact, ManifestMode, SourceObject};
use libfuzzer_sys::fuzz_target;
#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let Ok(event) = archgate::inbound::parse_codebuild_event(value) else {
        return;
    };
    let config = common::config();
    let Ok(change) = archgate::inbound::build_change(&event, &config) else {
        return;
    };
    let Ok((key, fact)) =
        archgate::inbound::build_fact(&change, &change.environment, &change.exported, &config)
    else {
        return;
    };
    let source = SourceObject {
        bucket: "archgate-source-123456789012".into(),
        key: format!("releases/{}.zip", key.tag),
        version_id: Some("v2".into()),
        etag: None,
        size: None,
        uploaded_at: None,
        sequencer: None,
    };
    let upload = Fact::SourceUploaded {
        source: source.clone(),
        manifest_mode: ManifestMode::Codebuild,
    };
    let Decision::Apply { next, .. } = decide(None, &key, &upload, 0) else {
        return;
    };
    let mut waiting = *next;
    waiting.attempt = 2;
    let Fact::BuildChanged { role, origin, .. } = &fact else {
        return;
    };
    if let Decision::Apply { next, .. } = decide(Some(&waiting), &key, &fact, 1) {
        let own = origin.as_ref().is_some_and(|o| o.is_current(2, &source));
        assert!(
            own || next.build(*role).build_id.is_none(),
            "a build of another attempt entered attempt 2: {origin:?}"
        );
    }
});
