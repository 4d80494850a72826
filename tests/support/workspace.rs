//! The checkout itself: its files, the template, the crates' manifests.

use serde_yaml::Value as Yaml;
use std::path::{Path, PathBuf};

/// The workspace's root directory.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A file of the workspace, by its path from the root.
pub fn read(relative: &str) -> String {
    let path = workspace().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// template.yaml, parsed.
pub fn template() -> Yaml {
    serde_yaml::from_str(&read("template.yaml")).unwrap_or_else(|e| panic!("template.yaml: {e}"))
}

/// A Cargo.toml's package name and its `[[bin]]` names.
pub fn manifest_names(manifest: &str) -> (Option<String>, Vec<String>) {
    let mut section = "";
    let mut package = None;
    let mut bins = Vec::new();
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line;
            continue;
        }
        let Some(value) = line
            .strip_prefix("name")
            .map(str::trim_start)
            .and_then(|rest| rest.strip_prefix('='))
        else {
            continue;
        };
        let value = value.trim().trim_matches('"').to_owned();
        match section {
            "[[bin]]" => bins.push(value),
            "[package]" => package = Some(value),
            _ => {}
        }
    }
    (package, bins)
}
