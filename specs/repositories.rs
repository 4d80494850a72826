//! Which repository an upload's key names: nothing changes without a namespace; with one, the
//! key's folder is the repository, and a folder that is not a valid name under the namespace
//! is refused, never mapped to another repository.

use archgate::config::{sample_lookup, ConfigError, REPOSITORY_KMS_KEY, REPOSITORY_PREFIX};
use archgate::domain::release_event::rejection_event;
use archgate::domain::repository::{Repositories, RepositoryRefusal};
use archgate::domain::{IgnoreReason, ReleaseKey, ReleaseTag};
use archgate::inbound::{parse_s3_event, upload_fact, S3Event};
use archgate::Config;
use proptest::prelude::*;

fn with_namespace() -> Repositories {
    Repositories {
        default: "myapp".to_owned(),
        namespace: Some("apps/".to_owned()),
    }
}

#[test]
fn without_a_namespace_folders_mean_nothing() {
    // Given a deployment with one repository
    let one = Repositories {
        default: "myapp".to_owned(),
        namespace: None,
    };
    // When a key has folders, then it is still the default repository's
    assert_eq!(one.of_key("apps/web/web-1.4.2.zip"), Ok("myapp"));
    assert_eq!(one.of_key("web-1.4.2.zip"), Ok("myapp"));
    assert!(one.owns("myapp") && !one.owns("apps/web"));
}

#[test]
fn with_a_namespace_the_folder_is_the_repository() {
    let repositories = with_namespace();
    // When the key names a repository under the namespace, then that is the repository
    assert_eq!(
        repositories.of_key("apps/web/web-1.4.2.zip"),
        Ok("apps/web")
    );
    assert_eq!(
        repositories.of_key("apps/team-a/api/api-2.zip"),
        Ok("apps/team-a/api")
    );
    // And a key without a folder is the default repository's
    assert_eq!(repositories.of_key("web-1.4.2.zip"), Ok("myapp"));
    // And the repositories it owns are the default and the names under the namespace
    assert!(repositories.owns("myapp") && repositories.owns("apps/web"));
    assert!(
        !repositories.owns("apps/")
            && !repositories.owns("apps")
            && !repositories.owns("other/web")
    );
}

#[test]
fn hostile_folders_are_refused_with_the_rule_they_break() {
    let repositories = with_namespace();
    for (rest, why) in [
        ("other/web/x.zip", "not under the namespace"),
        ("apps/x.zip", "not under the namespace"),
        ("apps/Web/x.zip", "not an ECR repository name"),
        ("apps//web/x.zip", "not an ECR repository name"),
        ("apps/../web/x.zip", "not an ECR repository name"),
        ("apps/./web/x.zip", "not an ECR repository name"),
        ("apps/wéb/x.zip", "not an ECR repository name"),
        ("apps/web--x/x.zip", "not an ECR repository name"),
        ("/apps/web/x.zip", "not an ECR repository name"),
    ] {
        let refused = repositories.of_key(rest).expect_err(rest);
        assert!(refused.to_string().contains(why), "{rest}: {refused}");
    }
    let long = format!("apps/{}/x.zip", "a".repeat(260));
    assert!(matches!(
        repositories.of_key(&long),
        Err(RepositoryRefusal::NotARepositoryName { .. })
    ));
}

proptest! {
    #[test]
    fn a_key_names_an_owned_repository_or_none(rest in "[a-zA-Z0-9./_é-]{0,40}") {
        // Whatever the key, the repository it is given is one of archgate's, and a key with a
        // folder is never given the default repository unless it names it
        let repositories = with_namespace();
        if let Ok(repository) = repositories.of_key(&rest) {
            prop_assert!(repositories.owns(repository));
            if let Some((folder, _)) = rest.rsplit_once('/') {
                prop_assert_eq!(repository, folder);
            }
        }
    }
}

#[test]
fn the_namespace_is_checked_like_every_variable() {
    for bad in ["apps", "Apps/", "/apps/", "apps//", "apps/-x/"] {
        let error = Config::from_lookup(sample_lookup(&[(REPOSITORY_PREFIX, bad)])).unwrap_err();
        assert!(
            matches!(&error, ConfigError::Invalid { variable, .. } if *variable == REPOSITORY_PREFIX),
            "{bad}: {error}"
        );
    }
    let config = Config::from_lookup(sample_lookup(&[(REPOSITORY_PREFIX, "apps/")])).unwrap();
    assert_eq!(config.repositories(), with_namespace());
    // And so is the key the namespace's repositories are encrypted with
    let error = Config::from_lookup(sample_lookup(&[(REPOSITORY_KMS_KEY, "my key")])).unwrap_err();
    assert!(
        matches!(&error, ConfigError::Invalid { variable, .. } if *variable == REPOSITORY_KMS_KEY),
        "{error}"
    );
    let key = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    let config = Config::from_lookup(sample_lookup(&[(REPOSITORY_KMS_KEY, key)])).unwrap();
    assert_eq!(config.repository_kms_key.as_deref(), Some(key));
}

/// The sample S3 upload, under `key`.
fn upload_event(key: &str) -> S3Event {
    let path = format!(
        "{}/../events/s3-object-created.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut event: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    event["detail"]["object"]["key"] = serde_json::json!(key);
    parse_s3_event(event).unwrap()
}

#[test]
fn an_upload_starts_a_release_of_the_repository_its_key_names() {
    // Given a deployment with the namespace `apps/`
    let config = Config::from_lookup(sample_lookup(&[(REPOSITORY_PREFIX, "apps/")])).unwrap();
    let upload = |key: &str| upload_fact(&upload_event(key), &config);
    // When web's release is uploaded under its folder, then it is a release of apps/web
    let (key, _) = upload("releases/apps/web/web-1.4.2.zip").unwrap();
    assert_eq!(
        key,
        ReleaseKey::new("apps/web", ReleaseTag::parse("web-1.4.2").unwrap())
    );
    // And an upload naming a repository outside the namespace starts nothing, and says why
    let refused = upload("releases/teams/web/web-1.4.2.zip").unwrap_err();
    assert!(
        matches!(&refused, IgnoreReason::RefusedRepository { refusal, .. } if refusal.rule() == "outside-namespace"),
        "{refused}"
    );
    assert!(
        refused
            .to_string()
            .contains("not under the namespace `apps/`"),
        "{refused}"
    );
}

#[test]
fn a_refused_upload_is_announced_as_rejected_with_its_rule_and_no_release() {
    // Given a deployment with the namespace `apps/`, and the sample upload moved under a folder
    let config = Config::from_lookup(sample_lookup(&[(REPOSITORY_PREFIX, "apps/")])).unwrap();
    // (what start-builds announces: the rejection its ignore reason carries)
    let announced = |key: &str| {
        upload_fact(&upload_event(key), &config)
            .err()
            .and_then(|reason| rejection_event(&reason))
    };
    // When the folder is outside the namespace, then `Release Rejected` says so, with the rule
    let rejected =
        announced("releases/teams/web/web-1.4.2.zip").expect("a refused upload is announced");
    assert_eq!(rejected.detail_type(), "Release Rejected");
    assert_eq!(rejected.detail.repository, "teams/web");
    assert_eq!(rejected.detail.tag, "web-1.4.2");
    assert_eq!(rejected.detail.rule, Some("outside-namespace"));
    assert_eq!(rejected.detail.attempt, 0);
    // And the same upload delivered twice is the same announcement (consumers drop repeats)
    let again = announced("releases/teams/web/web-1.4.2.zip").unwrap();
    assert_eq!(again.detail.event_key, rejected.detail.event_key);
    // And a folder that is no repository name is announced with that rule
    let bad = announced("releases/apps/Web/web-1.4.2.zip").unwrap();
    assert_eq!(bad.detail.rule, Some("not-a-repository-name"));
    // And an upload that starts a release, or is ignored for another reason, announces nothing
    assert!(announced("releases/apps/web/web-1.4.2.zip").is_none());
    assert!(announced("releases/web.tar.gz").is_none());
}
