//! The configuration as a specification: what [`archgate::Config`] and
//! [`archgate::config::RetentionConfig`] read from the environment, what they refuse, and that
//! every problem names its variable, all of them at once.

use archgate::config::{
    ConfigError, ReleaseRules, RetentionConfig, AMD64_PROJECT, ARM64_PROJECT, EVENT_BUS,
    GATE_ALLOWLIST, GATE_ON_SCAN_FAILURE, LEDGER_TABLE, MANIFEST_MODE, MANIFEST_PROJECT,
    MOVING_TAGS, REPOSITORY, RETENTION_ATTEMPT_DAYS, RETENTION_KEEP_DAYS, RETENTION_KEEP_RELEASES,
    RETENTION_MAX_DELETE_SHARE, RETENTION_PROTECT, RETENTION_REPOSITORIES, RETENTION_UNTAGGED_DAYS,
    SIGNING_KEY, SOURCE_BUCKET, SOURCE_PREFIX, VARIABLES,
};
use archgate::domain::gate::{AllowEntry, OnScanFailure, Policy, Severity};
use archgate::domain::ManifestMode;
use archgate::Config;
use std::collections::HashMap;
use time::macros::date;

// ---------------------------------------------------------------------------------------
// The functions' and the CLI's configuration
// ---------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------
// The gate's allowlist (`ARCHGATE_GATE_ALLOWLIST`)
// ---------------------------------------------------------------------------------------

mod allowlist {
    use super::*;

    /// The configuration of [`base`] with `allowlist` as `ARCHGATE_GATE_ALLOWLIST`.
    fn with_allowlist(allowlist: &str) -> Result<Config, ConfigError> {
        let mut vars = base();
        vars.insert(GATE_ALLOWLIST.into(), allowlist.into());
        Config::from_map(&vars)
    }

    #[test]
    fn entries_are_trimmed_and_their_dates_read_as_dates() {
        let config = with_allowlist(
            r#"[{"id": " CVE-1 ", "expires": "2026-12-31 ", "reason": "not reachable"}]"#,
        )
        .unwrap();
        assert_eq!(
            config.gate.allowlist,
            [AllowEntry {
                id: "CVE-1".into(),
                expires: date!(2026 - 12 - 31),
                reason: "not reachable".into(),
            }]
        );
    }

    #[test]
    fn only_plain_iso_dates_are_accepted() {
        for expires in ["+2026-12-31", "2026-1-31", "31-12-2026", "2026-12-31T00:00"] {
            let entry = format!(r#"[{{"id": "CVE-1", "expires": "{expires}", "reason": "x"}}]"#);
            let err = with_allowlist(&entry).unwrap_err().to_string();
            assert!(err.contains("is not a YYYY-MM-DD date"), "{expires}: {err}");
        }
    }

    #[test]
    fn an_entry_of_the_wrong_shape_is_named_by_its_index() {
        let err = with_allowlist(r#"[{"id": "CVE-1", "expires": "2026-01-01", "reason": "x"}, 7]"#)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(GATE_ALLOWLIST) && err.contains("entry 1:"),
            "{err}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Retention's configuration
// ---------------------------------------------------------------------------------------

mod retention {
    use super::*;

    fn lookup<'a>(overrides: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            overrides
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
                .or_else(|| match name {
                    RETENTION_REPOSITORIES => Some("myapp, team/*".to_owned()),
                    LEDGER_TABLE => Some("archgate-ledger".to_owned()),
                    EVENT_BUS => Some("archgate".to_owned()),
                    _ => None,
                })
        }
    }

    #[test]
    fn defaults_are_a_week_and_half_the_repository() {
        let config = RetentionConfig::from_lookup(lookup(&[])).unwrap();
        assert_eq!(config.repositories, ["myapp", "team/*"]);
        assert_eq!(config.untagged_days, 7);
        assert_eq!(config.max_delete_share, 0.5);
        // Release-level expiry is opt-in.
        assert!(!config.release_policy(false).expires_published());
        assert_eq!(config.releases, ReleaseRules::default());
    }

    #[test]
    fn release_rules_are_read_and_checked() {
        let config = RetentionConfig::from_lookup(lookup(&[
            (RETENTION_KEEP_RELEASES, "20"),
            (RETENTION_KEEP_DAYS, " 90 "),
            (RETENTION_PROTECT, "v1.*, lts-*"),
            (RETENTION_ATTEMPT_DAYS, ""),
        ]))
        .unwrap();
        let rules = &config.releases;
        assert_eq!(
            (rules.keep_releases, rules.keep_days, rules.attempt_days),
            (Some(20), Some(90), None)
        );
        assert_eq!(rules.protect.len(), 2);
        assert!(rules.protect[0].matches("v1.4.2") && !rules.protect[0].matches("v2.0"));
        for (variable, value) in [
            (RETENTION_KEEP_RELEASES, "0"),
            (RETENTION_KEEP_RELEASES, "-1"),
            (RETENTION_KEEP_RELEASES, "ten"),
            (RETENTION_KEEP_DAYS, "2.5"),
            (RETENTION_ATTEMPT_DAYS, "99999999999"),
            (RETENTION_PROTECT, "v1 beta"),
            (RETENTION_PROTECT, "v1/*"),
        ] {
            let err = RetentionConfig::from_lookup(lookup(&[(variable, value)])).unwrap_err();
            assert!(err.to_string().starts_with(variable), "{err}");
        }
    }

    #[test]
    fn zero_negative_and_odd_ages_and_shares_are_refused_naming_the_variable() {
        for (variable, value) in [
            (RETENTION_UNTAGGED_DAYS, "0"),
            (RETENTION_UNTAGGED_DAYS, "-3"),
            (RETENTION_UNTAGGED_DAYS, "7.5"),
            (RETENTION_UNTAGGED_DAYS, "soon"),
            (RETENTION_MAX_DELETE_SHARE, "0"),
            (RETENTION_MAX_DELETE_SHARE, "1.5"),
            (RETENTION_MAX_DELETE_SHARE, "NaN"),
            (RETENTION_REPOSITORIES, "Bad Name"),
        ] {
            let err = RetentionConfig::from_lookup(lookup(&[(variable, value)])).unwrap_err();
            assert!(err.to_string().starts_with(variable), "{err}");
        }
    }

    #[test]
    fn every_problem_is_reported_together() {
        // Given a bad age, a bad share and no ledger table
        let lookup = |name: &str| match name {
            RETENTION_REPOSITORIES => Some("myapp".to_owned()),
            RETENTION_UNTAGGED_DAYS => Some("soon".to_owned()),
            RETENTION_MAX_DELETE_SHARE => Some("2".to_owned()),
            EVENT_BUS => Some("archgate".to_owned()),
            _ => None,
        };
        // When the configuration is read, then one error names all three
        let error = RetentionConfig::from_lookup(lookup).unwrap_err();
        let ConfigError::Several(problems) = &error else {
            panic!("expected several problems: {error}");
        };
        assert_eq!(problems.len(), 3, "{error}");
        for variable in [
            RETENTION_UNTAGGED_DAYS,
            RETENTION_MAX_DELETE_SHARE,
            LEDGER_TABLE,
        ] {
            assert!(error.to_string().contains(variable), "{error}");
        }
    }
}
