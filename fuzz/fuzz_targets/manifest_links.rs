#![no_main]
//! Untrusted manifest bytes → what retention reads from them, and the per-arch image reader.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = archgate::domain::retention::read_links(None, data);
    let _ = archgate::domain::retention::read_links(Some(archgate::domain::oci::OCI_INDEX), data);
    let raw = archgate::domain::oci::RawManifest { media_type: None, bytes: data.to_vec() };
    let _ = archgate::domain::oci::platform_image(archgate::domain::Arch::Arm64, &raw);
});
