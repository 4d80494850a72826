#![no_main]
//! Untrusted bytes → S3 "Object Created" parsing and the upload decision (a first upload, and
//! a new version of a release that exists: sequencers and times compared): never a panic, and
//! never a release for a reserved name.
use libfuzzer_sys::fuzz_target;
#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        if let Ok(event) = archgate::inbound::parse_s3_event(value) {
            if let Ok((key, fact)) = archgate::inbound::upload_fact(&event, &common::config()) {
                use archgate::domain::{decide, Decision, Fact};
                // A name that reads as another image's signature or referrers tag never
                // starts a release.
                if archgate::domain::tag::names_another_image(key.tag.as_str()) {
                    assert!(matches!(fact, Fact::SourceRefused { .. }), "{fact:?}");
                }
                if let Decision::Apply { next, .. } = decide(None, &key, &fact, 0) {
                    let mut earlier = *next;
                    earlier.source.sequencer = Some("00A1".into());
                    earlier.source.version_id = Some("earlier".into());
                    let _ = decide(Some(&earlier), &key, &fact, 1);
                }
            }
        }
    }
});
