//! The HTTPS client every SDK client uses: rustls on ring, trusting the roots that AWS service
//! endpoints chain to.
//!
//! Why not the SDK's default client: it loads and parses the whole system trust store while
//! the function starts (half of a function's start on a machine with a few hundred CA files),
//! and it links aws-lc, the larger of rustls' two crypto providers. archgate's functions talk
//! only to AWS endpoints (DynamoDB, CodeBuild, ECR, EventBridge), whose certificates chain to
//! Amazon Trust Services; trusting those five roots is faster and a smaller attack surface.
//! Where something else must be trusted too (a TLS-inspecting proxy, an emulator behind
//! HTTPS, a partition whose endpoints chain elsewhere), setting `SSL_CERT_FILE` or
//! `SSL_CERT_DIR` adds the system's trust store, as OpenSSL-based tools read it.

use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode, TlsContext, TrustStore};
use aws_smithy_runtime_api::client::http::SharedHttpClient;

/// Amazon Root CA 1–4 and Starfield Services Root Certificate Authority – G2, the roots of
/// Amazon Trust Services (PEM, as published at <https://www.amazontrust.com/repository/>).
pub const AMAZON_TRUST_SERVICES: &str = include_str!("amazon-trust-services.pem");

/// Variables that ask for the system's trust store as well.
pub const SYSTEM_TRUST_VARIABLES: [&str; 2] = ["SSL_CERT_FILE", "SSL_CERT_DIR"];

/// Whether `lookup` asks for the system trust store.
pub fn wants_system_roots(lookup: impl Fn(&str) -> Option<String>) -> bool {
    SYSTEM_TRUST_VARIABLES
        .iter()
        .any(|variable| lookup(variable).is_some_and(|value| !value.is_empty()))
}

/// The HTTPS client, trusting Amazon Trust Services (and the system's store when asked).
pub fn http_client() -> SharedHttpClient {
    let system = wants_system_roots(|name| std::env::var(name).ok());
    let trust = TrustStore::empty()
        .with_native_roots(system)
        .with_pem_certificate(AMAZON_TRUST_SERVICES.as_bytes());
    let context = TlsContext::builder()
        .with_trust_store(trust)
        .build()
        .expect("a trust store without server names is always valid");
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .tls_context(context)
        .build_https()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_roots_are_the_five_amazon_trust_services_certificates() {
        // Given the embedded PEM, when its certificates are counted, then there are five
        let certificates = AMAZON_TRUST_SERVICES
            .matches("-----BEGIN CERTIFICATE-----")
            .count();
        assert_eq!(certificates, 5);
        assert_eq!(
            certificates,
            AMAZON_TRUST_SERVICES
                .matches("-----END CERTIFICATE-----")
                .count()
        );
    }

    #[test]
    fn the_system_store_is_added_only_when_asked_for() {
        let none = |_: &str| None;
        assert!(!wants_system_roots(none));
        assert!(!wants_system_roots(|_| Some(String::new())));
        assert!(wants_system_roots(|name| {
            (name == "SSL_CERT_FILE").then(|| "/etc/ssl/certs/proxy.pem".to_owned())
        }));
        assert!(wants_system_roots(|name| {
            (name == "SSL_CERT_DIR").then(|| "/etc/ssl/certs".to_owned())
        }));
    }
}
