//! Every sample in `events/` is a real-shaped event: it parses, and it reads as the file name
//! says, against the configuration template.yaml deploys with.

use archgate::config::{sample_lookup, MANIFEST_MODE};
use archgate::domain::{BuildRole, BuildStatus, Fact};
use archgate::inbound::{
    build_change, build_fact, parse_codebuild_event, parse_s3_event, upload_fact,
};
use archgate::Config;

fn config() -> Config {
    Config::from_lookup(sample_lookup(&[(MANIFEST_MODE, "codebuild")])).unwrap()
}

fn sample(name: &str) -> serde_json::Value {
    let path = format!("{}/../events/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

#[test]
fn every_sample_parses_as_its_kind() {
    let dir = format!("{}/../events", env!("CARGO_MANIFEST_DIR"));
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if !name.ends_with(".json") {
            continue;
        }
        let event = sample(&name);
        if name.starts_with("s3-") {
            parse_s3_event(event).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        } else if name.starts_with("scheduled-") {
            assert_eq!(event["source"], "aws.events", "{name}");
            assert_eq!(event["detail-type"], "Scheduled Event", "{name}");
        } else if name.starts_with("ecr-scan") || name.starts_with("inspector2") {
            archgate::inbound::parse_scan_event(event).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        } else {
            parse_codebuild_event(event).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        }
        seen += 1;
    }
    assert!(seen >= 21, "only {seen} samples");
}

#[test]
fn the_upload_sample_starts_the_release_it_names() {
    let (key, fact) = upload_fact(
        &parse_s3_event(sample("s3-object-created.json")).unwrap(),
        &config(),
    )
    .unwrap();
    assert_eq!(key.to_string(), "myapp:myapp-1.4.2");
    let Fact::SourceUploaded { source, .. } = fact else {
        panic!("{fact:?}")
    };
    assert_eq!(
        source.version_id.as_deref(),
        Some("3/L4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY+MTRCxf3vjVBH40Nr8X8gdRQBpUMLUo")
    );
}

#[test]
fn build_samples_read_as_their_project_status_and_release() {
    let cases = [
        (
            "codebuild-amd64-succeeded.json",
            BuildRole::Amd64,
            BuildStatus::Succeeded,
        ),
        (
            "codebuild-amd64-failed.json",
            BuildRole::Amd64,
            BuildStatus::Failed,
        ),
        (
            "codebuild-amd64-stopped.json",
            BuildRole::Amd64,
            BuildStatus::Stopped,
        ),
        (
            "codebuild-arm64-succeeded.json",
            BuildRole::Arm64,
            BuildStatus::Succeeded,
        ),
        (
            "codebuild-arm64-failed.json",
            BuildRole::Arm64,
            BuildStatus::Failed,
        ),
        (
            "codebuild-arm64-stopped.json",
            BuildRole::Arm64,
            BuildStatus::Stopped,
        ),
        (
            "codebuild-manifest-succeeded.json",
            BuildRole::Manifest,
            BuildStatus::Succeeded,
        ),
        (
            "codebuild-manifest-failed.json",
            BuildRole::Manifest,
            BuildStatus::Failed,
        ),
    ];
    let config = config();
    for (name, role, status) in cases {
        let change = build_change(&parse_codebuild_event(sample(name)).unwrap(), &config)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!((change.role, change.status), (role, status), "{name}");
        // The event names the build by ARN; archgate records CodeBuild's id.
        assert!(
            change.build_id.starts_with(&format!(
                "archgate-{}:",
                if role == BuildRole::Manifest {
                    "manifest".to_owned()
                } else {
                    format!("build-{role}")
                }
            )),
            "{name}: {}",
            change.build_id
        );
        let (key, _) = build_fact(&change, &change.environment, &change.exported, &config)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(key.to_string(), "myapp:myapp-1.4.2", "{name}");
    }
}

#[test]
fn the_sample_without_environment_needs_codebuild_to_identify_it() {
    let change = build_change(
        &parse_codebuild_event(sample("codebuild-amd64-no-env.json")).unwrap(),
        &config(),
    )
    .unwrap();
    assert!(!change
        .environment
        .iter()
        .any(|(n, _)| n == "ARCHGATE_RELEASE_TAG"));
    assert!(build_fact(&change, &change.environment, &change.exported, &config()).is_err());
}

#[test]
fn events_of_another_account_or_region_are_ignored_with_the_reason() {
    // Given a deployment in account 999999999999 / us-east-1, and samples from 123456789012 / eu-west-1
    let mut other_account = config();
    other_account.account_id = Some("999999999999".into());
    let mut other_region = config();
    other_region.region = Some("us-east-1".into());
    let mut same = config();
    same.account_id = Some("123456789012".into());
    same.region = Some("eu-west-1".into());

    for (config, expected) in [
        (&other_account, Some("foreign_account")),
        (&other_region, Some("foreign_region")),
        (&same, None),
    ] {
        let upload = upload_fact(
            &parse_s3_event(sample("s3-object-created.json")).unwrap(),
            config,
        );
        let build = build_change(
            &parse_codebuild_event(sample("codebuild-amd64-succeeded.json")).unwrap(),
            config,
        );
        let scan = archgate::inbound::scan_observation(
            &archgate::inbound::parse_scan_event(sample("ecr-scan-findings.json")).unwrap(),
            config,
        );
        match expected {
            Some(kind) => {
                let Err(archgate::inbound::NoObservation::Ignored(scan)) = scan else {
                    panic!("the scan is ignored: {scan:?}");
                };
                for reason in [upload.unwrap_err(), build.unwrap_err(), scan] {
                    assert_eq!(reason.kind(), kind, "{reason}");
                    assert!(
                        reason.to_string().contains("not this deployment's"),
                        "{reason}"
                    );
                }
            }
            None => assert!(upload.is_ok() && build.is_ok() && scan.is_ok()),
        }
    }
}
