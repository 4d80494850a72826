//! A local installation that outlives one command: `archgate local up` writes its
//! configuration to `.archgate/local.env` in the current directory, and every `archgate`
//! command started there reads it (variables already in the environment win).

use std::path::{Path, PathBuf};

/// The directory a local installation keeps its files in, under the current directory.
pub const LOCAL_DIR: &str = ".archgate";

pub fn env_file() -> PathBuf {
    Path::new(LOCAL_DIR).join("local.env")
}

pub fn pid_file() -> PathBuf {
    Path::new(LOCAL_DIR).join("emulator.pid")
}

/// `NAME=VALUE` lines; blank lines and `#` comments are skipped.
pub fn parse(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .filter(|(name, _)| !name.is_empty())
        .collect()
}

/// The variables of `.archgate/local.env` that the environment does not set already.
pub fn missing_from_environment(path: &Path) -> Vec<(String, String)> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    parse(&text)
        .into_iter()
        .filter(|(name, _)| std::env::var_os(name).is_none())
        .collect()
}

/// The dotenv text of `variables`, as `cargo lambda watch --env-file` reads it.
pub fn dotenv(variables: &[(String, String)]) -> String {
    let mut text = String::from("# archgate local installation (archgate local up)\n");
    for (name, value) in variables {
        text.push_str(&format!("{name}={value}\n"));
    }
    text
}

/// The JSON `sam local invoke --env-vars` reads: every function gets every variable.
pub fn sam_env_vars(variables: &[(String, String)]) -> serde_json::Value {
    let parameters: serde_json::Map<String, serde_json::Value> = variables
        .iter()
        .map(|(name, value)| (name.clone(), serde_json::Value::String(value.clone())))
        .collect();
    serde_json::json!({ "Parameters": parameters })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_file_reads_back_the_same_variables() {
        let variables = vec![
            (
                "AWS_ENDPOINT_URL".to_owned(),
                "http://127.0.0.1:5000".to_owned(),
            ),
            ("ARCHGATE_SOURCE_PREFIX".to_owned(), "releases/".to_owned()),
        ];
        assert_eq!(parse(&dotenv(&variables)), variables);
        assert_eq!(
            sam_env_vars(&variables)["Parameters"]["AWS_ENDPOINT_URL"],
            "http://127.0.0.1:5000"
        );
    }
}
