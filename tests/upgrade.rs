//! An existing single-repository installation keeps working unchanged: the same environment,
//! the same keys, and the ledger items it wrote before repositories had policies of their
//! own and digest pointers were per repository (`tests/fixtures/ledger-single-repository.json`:
//! a published release, its two digest pointers and its moving tag, as written then).

use archgate::aws::DynamoLedger;
use archgate::domain::policy::PolicyRead;
use archgate::domain::{Digest, Phase};
use archgate::ports::Ledger;
use archgate_integration_tests::{installation_in, upload, ManifestMode, TAG};
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledger_items_written_before_repositories_had_policies_still_read_and_serve() {
    // Given a single-repository installation (no namespace) outside us-east-1, whose ledger
    // holds the items an earlier version wrote
    let env = installation_in(ManifestMode::Native, "eu-west-1").await;
    let fixture: Vec<Value> =
        serde_json::from_str(include_str!("fixtures/ledger-single-repository.json")).unwrap();
    for item in &fixture {
        let mut put = env
            .clients
            .dynamodb
            .put_item()
            .table_name(&env.config.ledger_table);
        for (name, value) in item.as_object().unwrap() {
            let value = match (&value["S"], &value["N"], &value["SS"]) {
                (Value::String(s), _, _) => AttributeValue::S(s.clone()),
                (_, Value::String(n), _) => AttributeValue::N(n.clone()),
                (_, _, Value::Array(set)) => {
                    AttributeValue::Ss(set.iter().map(|v| v.as_str().unwrap().to_owned()).collect())
                }
                _ => panic!("{name}: {value}"),
            };
            put = put.item(name, value);
        }
        put.send().await.unwrap();
    }
    let ledger = DynamoLedger::new(env.clients.dynamodb.clone(), &env.config.ledger_table);

    // When the release, the listing, its pointers and its moving tag are read
    let stored = env.release(TAG).await.unwrap().expect("the release reads");
    let listing = ledger.list(100).await.unwrap();
    let children: Vec<(archgate::domain::Arch, Digest)> = stored
        .release
        .candidate
        .as_ref()
        .expect("a candidate")
        .children
        .iter()
        .map(|c| (c.arch, c.digest.clone()))
        .collect();

    // Then the release is published, its verdicts name no policy version (recorded before
    // there were any), and nothing reads as damaged
    assert_eq!(stored.release.phase(), Phase::Published);
    assert!(stored
        .release
        .scans
        .iter()
        .all(|s| s.policy_version.is_none()));
    assert!(listing.unreadable.is_empty(), "{:?}", listing.unreadable);
    assert_eq!(listing.releases.len(), 1);
    // And a scan of its images still finds it through the pointers of then
    for (arch, digest) in &children {
        let found = ledger.find_by_digest("myapp", digest).await.unwrap();
        assert_eq!(found, [(env.key(TAG), *arch)], "{digest}");
    }
    // And `latest` still names it, and the repository has no policy of its own (version 0)
    let latest = ledger.moving_tag("myapp", "latest").await.unwrap();
    assert_eq!(latest.map(|h| h.release.to_string()), Some(TAG.to_owned()));
    assert_eq!(ledger.policy("myapp").await.unwrap(), PolicyRead::Unset);

    // When the same upload key is used again (the keys mean what they meant)
    let answer = env
        .start_builds(upload(&env, "releases/myapp-1.4.2.zip").await)
        .await;

    // Then it reaches the same release, in the same repository, and this version writes it
    assert_eq!(answer["status"], "applied", "{answer}");
    let again = env.release(TAG).await.unwrap().expect("the release reads");
    assert_eq!(again.release.key, stored.release.key);
    assert!(again.version > stored.version);
}
