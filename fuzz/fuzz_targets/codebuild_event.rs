#![no_main]
//! Untrusted bytes → CodeBuild state change parsing and release identification.
use libfuzzer_sys::fuzz_target;
#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        if let Ok(event) = archgate::inbound::parse_codebuild_event(value) {
            let config = common::config();
            if let Ok(change) = archgate::inbound::build_change(&event, &config) {
                let _ = archgate::inbound::build_fact(
                    &change,
                    &change.environment,
                    &change.exported,
                    &config,
                );
            }
        }
    }
});
