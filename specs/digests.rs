//! Content digests: `sha256:` and 64 lower-case hex digits, the sha256 of the exact bytes.

use archgate::domain::Digest;

#[test]
fn digest_of_bytes_is_sha256_hex() {
    assert_eq!(
        Digest::of(b"").as_str(),
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}

#[test]
fn rejects_other_algorithms_and_uppercase() {
    assert!(Digest::parse("sha512:abcd").is_err());
    assert!(Digest::parse(&format!("sha256:{}", "A".repeat(64))).is_err());
    assert!(Digest::parse(&format!("sha256:{}", "a".repeat(63))).is_err());
    assert!(Digest::parse(&format!("sha256:{}", "a".repeat(64))).is_ok());
}
