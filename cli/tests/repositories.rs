//! The release commands name a release of any of archgate's repositories (`<repository>:<tag>`
//! or `--repository`), and refuse, before any call, a repository that is not archgate's.

use crate::text;
use archgate::config::REPOSITORY_PREFIX;
use archgate::domain::ManifestMode;
use archgate_cli::local::{config_with, sample_build_context, LocalEnv};

#[tokio::test]
async fn a_release_of_the_namespace_is_named_with_its_repository() {
    // Given an installation whose uploads may name repositories under `apps/`, and a release
    // of apps/web started
    let config = config_with(ManifestMode::Native, &[(REPOSITORY_PREFIX, "apps/")]);
    let env = LocalEnv::start_in(config, crate::REGION)
        .await
        .expect("the local AWS emulator is required");
    let event = env
        .upload(
            "releases/apps/web/web-1.4.2.zip",
            sample_build_context("web"),
        )
        .await
        .unwrap();
    let answer = env.start_builds(event).await;
    assert_eq!(answer["status"], "applied", "{answer}");
    let run = |args: &[&str]| {
        crate::operator(&env)
            .args(args)
            .output()
            .expect("archgate runs")
    };

    // When its status is asked as <repository>:<tag> and with --repository
    for args in [
        &["release", "status", "apps/web:web-1.4.2"][..],
        &["release", "status", "web-1.4.2", "--repository", "apps/web"][..],
    ] {
        let output = run(args);
        // Then it is found
        assert_eq!(output.status.code(), Some(0), "{args:?}: {}", text(&output));
        assert!(text(&output).contains("apps/web"), "{}", text(&output));
    }
    // And `release list` shows it, alone when listing apps/web, not when listing myapp
    let listed = text(&run(&["release", "list"]));
    assert!(listed.contains("apps/web:web-1.4.2"), "{listed}");
    let listed = text(&run(&["release", "list", "--repository", "apps/web"]));
    assert!(listed.contains("apps/web:web-1.4.2"), "{listed}");
    let listed = text(&run(&["release", "list", "--repository", "myapp"]));
    assert!(!listed.contains("web-1.4.2"), "{listed}");

    // And the bare tag is the default repository's, where there is no such release
    let output = run(&["release", "status", "web-1.4.2"]);
    assert_eq!(output.status.code(), Some(4), "{}", text(&output));

    // When a repository outside archgate's is named, or two different ones
    for args in [
        &["release", "status", "teams/web:web-1.4.2"][..],
        &["gate", "check", "web-1.4.2", "--repository", "teams/web"][..],
        &[
            "release",
            "evaluate",
            "apps/web:web-1.4.2",
            "--repository",
            "apps/api",
        ][..],
    ] {
        let output = run(args);
        // Then the command refuses it as a wrong argument, having called nothing
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", text(&output));
    }
    assert!(
        text(&run(&["release", "status", "teams/web:web-1.4.2"])).contains(
            "teams/web is not one of archgate's repositories (myapp or a repository under apps/)"
        )
    );

    // And a malformed namespace names no repository (`apps` would own `appsweb`)
    let output = crate::operator(&env)
        .args(["release", "status", "appsweb:web-1.4.2"])
        .env("ARCHGATE_REPOSITORY_PREFIX", "apps")
        .output()
        .expect("archgate runs");
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(
        text(&output).contains("ARCHGATE_REPOSITORY_PREFIX"),
        "{}",
        text(&output)
    );
}

#[tokio::test]
async fn a_repository_policy_is_set_checked_versioned_and_shown() {
    // Given an installation with the namespace apps/ (the environment sets every gate value)
    let config = config_with(ManifestMode::Native, &[(REPOSITORY_PREFIX, "apps/")]);
    let env = LocalEnv::start_in(config, crate::REGION)
        .await
        .expect("the local AWS emulator is required");
    let run = |args: &[&str]| {
        crate::operator(&env)
            .args(args)
            .output()
            .expect("archgate runs")
    };

    // When values that the environment would refuse are set, and a name that is no setting
    let output = run(&[
        "repo",
        "set",
        "apps/web",
        "GATE_MAX_CRITICAL=many",
        "MOVING_TAGS=latest,bad tag!",
        "GATE_MAX_SOMETHING=1",
    ]);
    // Then every problem is named at once and nothing is written
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    for named in [
        "ARCHGATE_GATE_MAX_CRITICAL",
        "ARCHGATE_MOVING_TAGS",
        "GATE_MAX_SOMETHING is not a repository setting",
    ] {
        assert!(text(&output).contains(named), "{named}: {}", text(&output));
    }
    assert!(text(&run(&["repo", "show", "apps/web"])).contains("policy version 0"));

    // When valid values are set, then another change
    let output = run(&[
        "repo",
        "set",
        "apps/web",
        "GATE_MAX_CRITICAL=1",
        "ARCHGATE_RETENTION_KEEP_RELEASES=10",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert!(text(&output).contains("apps/web: policy version 1"));
    let output = run(&["repo", "set", "apps/web", "MOVING_TAGS=latest,stable"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));

    // Then `repo show` gives each value with where it comes from, at version 2
    let shown = text(&run(&["repo", "show", "apps/web"]));
    assert!(shown.contains("apps/web: policy version 2"), "{shown}");
    for line in [
        ("GATE_MAX_CRITICAL", "1", "repository (version 2)"),
        ("MOVING_TAGS", "latest,stable", "repository (version 2)"),
        ("RETENTION_KEEP_RELEASES", "10", "repository (version 2)"),
        ("GATE_MAX_HIGH", "unlimited", "environment"),
    ] {
        assert!(
            shown
                .lines()
                .any(|l| l.contains(line.0) && l.contains(line.1) && l.contains(line.2)),
            "{line:?}: {shown}"
        );
    }
    // And `repo unset` gives a value back to the environment, as version 3
    let output = run(&["repo", "unset", "apps/web", "GATE_MAX_CRITICAL"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let shown: serde_json::Value =
        serde_json::from_str(&text(&run(&["repo", "show", "apps/web", "--json"]))).unwrap();
    assert_eq!(shown["version"], 3);
    let critical = shown["settings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "GATE_MAX_CRITICAL")
        .unwrap();
    assert_eq!(critical["source"], "environment", "{shown}");
    // And `repo list` names it with its version, beside the default repository
    let listed = text(&run(&["repo", "list"]));
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("apps/web") && l.contains("version 3")),
        "{listed}"
    );
    assert!(listed.lines().any(|l| l.starts_with("myapp")), "{listed}");

    // When a repository outside the namespace is named, then nothing is called
    let output = run(&["repo", "set", "teams/web", "GATE_MAX_CRITICAL=1"]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    let output = run(&["retention", "apply", "--repository", "teams/web"]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(
        text(&output).contains("teams/web is not one of archgate's repositories"),
        "{}",
        text(&output)
    );
}
