#![no_main]
//! Untrusted bytes → S3 "Object Created" parsing and the upload decision: never a panic.
use libfuzzer_sys::fuzz_target;
#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        if let Ok(event) = archgate::inbound::parse_s3_event(value) {
            let _ = archgate::inbound::upload_fact(&event, &common::config());
        }
    }
});
