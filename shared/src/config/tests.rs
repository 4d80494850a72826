use super::*;
use crate::domain::gate::{OnScanFailure, Severity};

fn base() -> HashMap<String, String> {
    [
        (SOURCE_BUCKET, "archgate-source"),
        (SOURCE_PREFIX, "releases/"),
        (REPOSITORY, "team/myapp"),
        (AMD64_PROJECT, "archgate-build-amd64"),
        (ARM64_PROJECT, "archgate-build-arm64"),
        (MANIFEST_MODE, "native"),
        (LEDGER_TABLE, "archgate-ledger"),
        (EVENT_BUS, "archgate"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

#[test]
fn a_complete_environment_gives_a_config() {
    let config = Config::from_map(&base()).unwrap();
    assert_eq!(config.manifest_mode, ManifestMode::Native);
    assert_eq!(config.manifest_project, None);
    assert_eq!(
        Config::from_map(
            &config
                .to_env()
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect()
        )
        .unwrap(),
        config
    );
}

#[test]
fn every_required_variable_is_named_when_missing() {
    for variable in VARIABLES.into_iter().filter(|v| *v != MANIFEST_PROJECT) {
        let mut vars = base();
        vars.remove(variable);
        let err = Config::from_map(&vars).unwrap_err();
        assert_eq!(err, ConfigError::Missing { variable }, "{variable}");
        assert!(err.to_string().contains(variable));
    }
}

#[test]
fn invalid_values_name_the_variable() {
    let cases = [
        (SOURCE_BUCKET, "Bad_Bucket"),
        (REPOSITORY, "MyApp"),
        (REPOSITORY, "a//b"),
        (AMD64_PROJECT, "-x"),
        (MANIFEST_MODE, "buildx"),
        (LEDGER_TABLE, "t"),
        (EVENT_BUS, "bus with spaces"),
    ];
    for (variable, value) in cases {
        let mut vars = base();
        vars.insert(variable.to_owned(), value.to_owned());
        let err = Config::from_map(&vars).unwrap_err();
        assert!(err.to_string().starts_with(variable), "{err}");
    }
}

#[test]
fn the_gate_defaults_to_no_critical_and_fail_closed() {
    let config = Config::from_map(&base()).unwrap();
    assert_eq!(config.gate, Policy::default());
    assert!(config.moving_tags.is_empty());
}

#[test]
fn gate_variables_are_read_and_checked() {
    let mut vars = base();
    vars.insert("ARCHGATE_GATE_MAX_HIGH".into(), "3".into());
    vars.insert(GATE_ON_SCAN_FAILURE.into(), "pass".into());
    vars.insert(MOVING_TAGS.into(), "latest, stable,latest".into());
    vars.insert(SIGNING_KEY.into(), "alias/archgate-releases".into());
    vars.insert(
        GATE_ALLOWLIST.into(),
        r#"[{"id": "CVE-2024-1", "expires": "2026-12-31", "reason": "not reachable"}]"#.into(),
    );
    let config = Config::from_map(&vars).unwrap();
    assert_eq!(config.gate.max[&Severity::High], Some(3));
    assert_eq!(config.gate.on_scan_failure, OnScanFailure::Pass);
    assert_eq!(config.moving_tags, ["latest", "stable"]);
    assert_eq!(config.gate.allowlist[0].id, "CVE-2024-1");
    assert_eq!(
        config.signing_key.as_deref(),
        Some("alias/archgate-releases")
    );
    let round_trip: HashMap<String, String> = config
        .to_env()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    assert_eq!(Config::from_map(&round_trip).unwrap(), config);
}

#[test]
fn a_bad_allowlist_entry_is_named() {
    for (entry, expected) in [
        (
            r#"[{"id": "CVE-1", "expires": "2026-02-30", "reason": "x"}]"#,
            "entry 0 (CVE-1): `expires`",
        ),
        (
            r#"[{"id": "CVE-1", "expires": "2026-01-01", "reason": "x"}, {"id": "CVE-2", "expires": "soon", "reason": "x"}]"#,
            "entry 1 (CVE-2)",
        ),
        (
            r#"[{"id": "CVE-3", "expires": "2026-01-01"}]"#,
            "`reason` is missing",
        ),
        (r#"{"id": "CVE-3"}"#, "not a readable file"),
        ("[1,", "not a JSON array"),
    ] {
        let mut vars = base();
        vars.insert(GATE_ALLOWLIST.into(), entry.into());
        let err = Config::from_map(&vars).unwrap_err().to_string();
        assert!(
            err.starts_with(GATE_ALLOWLIST) && err.contains(expected),
            "{err}"
        );
    }
}

#[test]
fn bad_gate_values_name_their_variable() {
    for (variable, value) in [
        ("ARCHGATE_GATE_MAX_CRITICAL", "-1"),
        ("ARCHGATE_GATE_MAX_LOW", "many"),
        (GATE_ON_SCAN_FAILURE, "maybe"),
        (MOVING_TAGS, "latest,-bad"),
    ] {
        let mut vars = base();
        vars.insert(variable.into(), value.into());
        let err = Config::from_map(&vars).unwrap_err().to_string();
        assert!(err.starts_with(variable), "{err}");
    }
}

#[test]
fn codebuild_mode_needs_the_manifest_project() {
    let mut vars = base();
    vars.insert(MANIFEST_MODE.into(), "codebuild".into());
    assert_eq!(
        Config::from_map(&vars).unwrap_err(),
        ConfigError::Missing {
            variable: MANIFEST_PROJECT
        }
    );
    vars.insert(MANIFEST_PROJECT.into(), "archgate-manifest".into());
    assert_eq!(
        Config::from_map(&vars).unwrap().manifest_project.as_deref(),
        Some("archgate-manifest")
    );
}

#[test]
fn an_empty_environment_names_every_required_variable_at_once() {
    // Given no variable at all, when the configuration is read
    let error = Config::from_map(&HashMap::new()).unwrap_err();
    // Then one error lists each required variable as missing
    let ConfigError::Several(problems) = &error else {
        panic!("expected several problems: {error}");
    };
    let missing: Vec<&str> = problems
        .iter()
        .filter_map(|p| match p {
            ConfigError::Missing { variable } => Some(*variable),
            _ => None,
        })
        .collect();
    assert_eq!(
        missing,
        [
            SOURCE_BUCKET,
            SOURCE_PREFIX,
            REPOSITORY,
            AMD64_PROJECT,
            ARM64_PROJECT,
            MANIFEST_MODE,
            LEDGER_TABLE,
            EVENT_BUS
        ]
    );
    assert!(
        error.to_string().starts_with("8 configuration problems:"),
        "{error}"
    );
}

#[test]
fn two_invalid_values_are_both_named() {
    // Given a bad bucket name and a bad manifest mode
    let mut vars = base();
    vars.insert(SOURCE_BUCKET.into(), "Bad_Bucket".into());
    vars.insert(MANIFEST_MODE.into(), "sometimes".into());
    // When the configuration is read, then the message names both variables
    let message = Config::from_map(&vars).unwrap_err().to_string();
    assert!(
        message.contains(SOURCE_BUCKET) && message.contains(MANIFEST_MODE),
        "{message}"
    );
}
