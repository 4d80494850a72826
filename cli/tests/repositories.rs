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
