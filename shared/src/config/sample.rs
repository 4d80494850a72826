//! The sample configuration: the names the samples in `events/` carry, the ones a local
//! installation provisions, and the ones the tests and the simulation start from. One copy,
//! so a sample event and the configuration that accepts it cannot drift apart.

use super::variables::*;

/// Every variable of the sample configuration, with its value.
pub const SAMPLE: [(&str, &str); 12] = [
    (SOURCE_BUCKET, "archgate-source-123456789012"),
    (SOURCE_PREFIX, "releases/"),
    (REPOSITORY, "myapp"),
    (AMD64_PROJECT, "archgate-build-amd64"),
    (ARM64_PROJECT, "archgate-build-arm64"),
    (MANIFEST_MODE, "native"),
    (MANIFEST_PROJECT, "archgate-manifest"),
    (LEDGER_TABLE, "archgate-ledger"),
    (EVENT_BUS, "archgate"),
    (MOVING_TAGS, "latest"),
    (RETENTION_REPOSITORIES, "myapp"),
    (SIGNING_KEY, "alias/archgate-releases"),
];

/// A lookup for `Config::from_lookup` / `RetentionConfig::from_lookup`: `overrides` first
/// (the last of two for one variable wins), then [`SAMPLE`].
pub fn sample_lookup<'a>(
    overrides: &'a [(&'a str, &'a str)],
) -> impl Fn(&str) -> Option<String> + 'a {
    move |name| {
        overrides
            .iter()
            .rev()
            .chain(SAMPLE.iter())
            .find(|(variable, _)| *variable == name)
            .map(|(_, value)| (*value).to_owned())
    }
}
