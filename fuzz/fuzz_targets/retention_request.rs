#![no_main]
//! Untrusted bytes → the retention function's request.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = archgate_retention_cleanup::handler::request_of(value);
    }
});
