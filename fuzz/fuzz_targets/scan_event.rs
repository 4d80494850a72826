#![no_main]
//! Untrusted bytes → ECR / Inspector scan and Inspector finding event parsing.
use libfuzzer_sys::fuzz_target;
#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        if let Ok(event) = archgate::inbound::parse_finding_event(value.clone()) {
            let _ = archgate::inbound::finding_observation(&event, &common::config());
        }
        if let Ok(event) = archgate::inbound::parse_scan_event(value) {
            let _ = archgate::inbound::scan_observation(&event, &common::config());
        }
    }
});
