// The configuration the samples in events/ are shaped for.
pub fn config() -> archgate::Config {
    let vars: std::collections::HashMap<String, String> = [
        ("ARCHGATE_SOURCE_BUCKET", "archgate-source-123456789012"),
        ("ARCHGATE_SOURCE_PREFIX", "releases/"),
        ("ARCHGATE_REPOSITORY", "myapp"),
        ("ARCHGATE_AMD64_PROJECT", "archgate-build-amd64"),
        ("ARCHGATE_ARM64_PROJECT", "archgate-build-arm64"),
        ("ARCHGATE_MANIFEST_MODE", "codebuild"),
        ("ARCHGATE_MANIFEST_PROJECT", "archgate-manifest"),
        ("ARCHGATE_LEDGER_TABLE", "archgate-ledger"),
        ("ARCHGATE_EVENT_BUS", "archgate"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    archgate::Config::from_map(&vars).expect("valid configuration")
}
