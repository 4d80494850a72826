//! The HTTPS client every SDK client uses: rustls on ring, trusting the roots that AWS service
//! endpoints chain to.
//!
//! Why not the SDK's default client: it loads and parses the machine's whole trust store
//! while the function starts (half of a function's start on a machine with a few hundred CA
//! files), and it links aws-lc, the larger of rustls' two crypto providers. archgate's
//! functions talk only to AWS endpoints (DynamoDB, CodeBuild, ECR, EventBridge), whose
//! certificates chain to Amazon Trust Services; trusting those five roots is faster and a
//! smaller attack surface. Where something else must be trusted too (a TLS-inspecting proxy,
//! an emulator behind HTTPS, a partition whose endpoints chain elsewhere), `ARCHGATE_CA_BUNDLE`
//! names a PEM file whose certificates are trusted as well. An archgate variable rather than
//! `SSL_CERT_FILE`: machines often set that one for every program, which would bring the
//! whole store back unasked.

use crate::config::{ConfigError, CA_BUNDLE};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode, TlsContext, TrustStore};
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

/// Amazon Root CA 1–4 and Starfield Services Root Certificate Authority – G2, the roots of
/// Amazon Trust Services (PEM, as published at <https://www.amazontrust.com/repository/>).
pub const AMAZON_TRUST_SERVICES: &str = include_str!("amazon-trust-services.pem");

/// The HTTPS client, trusting Amazon Trust Services and the certificates of the PEM file
/// `ARCHGATE_CA_BUNDLE` names, if it names one.
pub fn http_client() -> Result<SharedHttpClient, ConfigError> {
    let extra = match std::env::var(CA_BUNDLE) {
        Ok(path) if !path.trim().is_empty() => Some(read_bundle(path.trim())?),
        _ => None,
    };
    Ok(http_client_trusting(extra))
}

/// The HTTPS client, trusting Amazon Trust Services and `extra` (PEM, already checked).
pub fn http_client_trusting(extra: Option<Vec<u8>>) -> SharedHttpClient {
    let mut trust = TrustStore::empty()
        .with_native_roots(false)
        .with_pem_certificate(AMAZON_TRUST_SERVICES.as_bytes());
    if let Some(pem) = extra {
        trust = trust.with_pem_certificate(pem);
    }
    let context = TlsContext::builder()
        .with_trust_store(trust)
        .build()
        .expect("a trust store without server names is always valid");
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .tls_context(context)
        .build_https()
}

/// Reads a PEM bundle and checks every certificate in it parses: the SDK's client would
/// otherwise fail on the first connection, not at start. A problem names `ARCHGATE_CA_BUNDLE`.
pub fn read_bundle(path: &str) -> Result<Vec<u8>, ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid {
        variable: CA_BUNDLE,
        value: path.to_owned(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|e| invalid(format!("cannot be read: {e}")))?;
    check_bundle(&pem).map_err(invalid)?;
    Ok(pem)
}

/// How many certificates a PEM bundle holds, or why it is not one.
pub fn check_bundle(pem: &[u8]) -> Result<usize, String> {
    let certificates = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not a PEM certificate bundle: {e}"))?;
    if certificates.is_empty() {
        return Err("holds no PEM certificate".to_owned());
    }
    Ok(certificates.len())
}
