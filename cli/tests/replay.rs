//! `archgate replay` routes event files to their handlers as template.yaml's rules do.

use serde_json::Value;

fn events_dir() -> String {
    format!("{}/../events", env!("CARGO_MANIFEST_DIR"))
}

#[tokio::test]
async fn replay_routes_each_sample_to_its_handler_and_reports_what_none_takes() {
    // Given a provisioned emulator and the configuration the samples are shaped for
    let env = crate::installation().await;
    let not_json =
        std::env::temp_dir().join(format!("archgate-not-json-{}.json", std::process::id()));
    std::fs::write(&not_json, "{ this is not json").unwrap();
    let scheduled =
        std::env::temp_dir().join(format!("archgate-scheduled-{}.json", std::process::id()));
    std::fs::write(&scheduled, r#"{"version":"0","id":"x","detail-type":"Scheduled Event","source":"aws.events","detail":{}}"#).unwrap();

    // When the samples are replayed through the binary
    let dir = events_dir();
    let output = crate::operator(&env)
        .arg("replay")
        .arg(format!("{dir}/s3-object-created.json"))
        .arg(format!("{dir}/s3-object-created.json"))
        .arg(format!("{dir}/codebuild-other-project.json"))
        .arg(format!("{dir}/codebuild-amd64-succeeded.json"))
        .arg(&scheduled)
        .arg(&not_json)
        .output()
        .expect("archgate runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let answers: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON answer per line"))
        .collect();

    // Then the file that is not JSON is answered first, and each event got its handler's
    // answer in the order the events happened: the upload (and its redelivery), the amd64
    // completion, the other project's completion, then the event without a time
    assert_eq!(answers.len(), 6, "{stdout}");
    assert_eq!(answers[0]["status"], "error");
    assert_eq!(answers[0]["file"], not_json.display().to_string());
    assert_eq!(answers[1]["function"], "start-builds");
    assert_eq!(answers[1]["status"], "applied", "{}", answers[1]);
    assert_eq!(
        answers[2]["status"], "ignored",
        "a redelivery starts nothing"
    );
    // The sample's build id is not one the emulator's CodeBuild issued for this release.
    assert_eq!(answers[3]["function"], "build-completed");
    assert_eq!(answers[3]["status"], "ignored", "{}", answers[3]);
    assert!(answers[3]["reason"]
        .as_str()
        .unwrap()
        .contains("not the amd64 build"));
    assert_eq!(answers[4]["function"], "build-completed");
    assert_eq!(answers[4]["status"], "ignored");
    assert!(answers[4]["file"]
        .as_str()
        .unwrap()
        .ends_with("codebuild-other-project.json"));
    assert_eq!(answers[5]["status"], "unrouted");
    // And a file that failed makes the command answer no (exit 1)
    assert_eq!(output.status.code(), Some(1));
    let _ = std::fs::remove_file(not_json);
    let _ = std::fs::remove_file(scheduled);
}
