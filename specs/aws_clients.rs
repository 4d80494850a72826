//! The SDK clients archgate builds: the HTTPS client's trust (Amazon Trust Services' roots,
//! and a bundle `ARCHGATE_CA_BUNDLE` names, checked at start) and the call log only tests ask
//! for.

use archgate::aws::{check_bundle, read_bundle, CallLog, Clients, AMAZON_TRUST_SERVICES};
use archgate::config::CA_BUNDLE;

#[test]
fn the_functions_clients_keep_no_call_log() {
    // Given the SDK configuration a function loads
    let sdk = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .build();
    // When the function builds its clients, then nothing records their calls (a log
    // would grow for the life of a warm container)
    assert!(Clients::new(&sdk).calls.is_none());
    assert!(Clients::with_call_log(&sdk, CallLog::default())
        .calls
        .is_some());
}

#[test]
fn the_embedded_roots_are_five_certificates_that_parse() {
    assert_eq!(check_bundle(AMAZON_TRUST_SERVICES.as_bytes()), Ok(5));
}

#[test]
fn a_bundle_that_is_not_pem_or_holds_no_certificate_is_refused() {
    assert!(check_bundle(b"").is_err());
    assert!(check_bundle(b"hello").is_err());
    let broken = AMAZON_TRUST_SERVICES.replacen("MII", "M!I", 1);
    assert!(check_bundle(broken.as_bytes()).is_err());
}

#[test]
fn an_unreadable_bundle_names_the_variable() {
    let error = read_bundle("/nonexistent/ca.pem").unwrap_err();
    assert!(error.to_string().starts_with(CA_BUNDLE), "{error}");
}
