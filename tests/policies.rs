//! Each repository's own policy, on the emulator outside us-east-1: the gate judges a release
//! by its repository's policy (the environment's values where it sets none), each verdict
//! names the version that judged it, a change applies to what is judged after it, and a policy
//! that cannot be read judges nothing.

use archgate::aws::DynamoLedger;
use archgate::domain::policy::PolicyRecord;
use archgate::domain::{Arch, Phase};
use archgate::ports::Ledger;
use archgate::retention::Request;
use archgate_cli::local::LocalEnv;
use archgate_integration_tests::releases::{publish, record, scan_both, CRITICAL};
use archgate_integration_tests::{candidate_ready, installation_with_namespace, status};
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::BTreeMap;

const REGION: &str = "eu-west-1";

fn ledger(env: &LocalEnv) -> DynamoLedger {
    DynamoLedger::new(env.clients.dynamodb.clone(), &env.config.ledger_table)
}

async fn set_policy(env: &LocalEnv, repository: &str, version: u64, values: &[(&str, &str)]) {
    let record = PolicyRecord {
        repository: repository.to_owned(),
        version,
        values: values
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<BTreeMap<_, _>>(),
        updated_at: 1,
    };
    let expected = (version > 1).then_some(version - 1);
    ledger(env)
        .save_policy(&record, expected)
        .await
        .expect("the policy is stored");
}

fn versions(release: &archgate::domain::Release) -> Vec<Option<u64>> {
    release.scans.iter().map(|s| s.policy_version).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_repository_is_judged_by_its_own_policy() {
    // Given apps/web allowing one critical finding (version 1), apps/api and the default
    // repository on the environment's policy (none), and a release named v1 in all three
    let env = installation_with_namespace("apps/", REGION).await;
    set_policy(&env, "apps/web", 1, &[("GATE_MAX_CRITICAL", "1")]).await;
    for release in ["apps/web:v1", "apps/api:v1", "v1"] {
        candidate_ready(&env, release).await;
    }

    // When each one's amd64 image reports one critical finding
    for release in ["apps/web:v1", "apps/api:v1", "v1"] {
        scan_both(&env, release, &[CRITICAL]).await;
    }

    // Then apps/web's is published and the others are blocked, each verdict naming the
    // version of its own repository's policy
    let web = record(&env, "apps/web:v1").await;
    assert_eq!(web.phase(), Phase::Published);
    assert_eq!(versions(&web), [Some(1), Some(1)]);
    for release in ["apps/api:v1", "v1"] {
        let blocked = record(&env, release).await;
        assert_eq!(blocked.phase(), Phase::Blocked, "{release}");
        assert_eq!(versions(&blocked), [Some(0), Some(0)], "{release}");
    }
    // And the signed verdict of apps/web names its policy's version
    let verdict = web
        .attestations
        .iter()
        .find(|a| a.kind == archgate::domain::attestation::AttestationKind::Verdict)
        .expect("a verdict attestation");
    let payload = archgate::domain::attestation::Envelope::parse(verdict.envelope.as_bytes())
        .expect("an envelope")
        .payload_bytes()
        .expect("a base64 payload");
    let statement: serde_json::Value = serde_json::from_slice(&payload).expect("a statement");
    let gate = &statement["predicate"][archgate::domain::attestation::statement::GATE_FIELD];
    assert_eq!(gate["policyVersion"], 1, "{gate}");
    assert_eq!(gate["repository"], "apps/web", "{gate}");
    // And only apps/web has a v1 image tag
    let resolve = |repository: &'static str| {
        let ecr = env.clients.ecr.clone();
        async move { archgate_cli::report::resolve(&ecr, repository, "v1").await }
    };
    assert!(resolve("apps/web").await.is_some());
    assert!(resolve("apps/api").await.is_none());
    assert!(resolve("myapp").await.is_none());

    // When apps/api's policy changes to allow it too and the release is evaluated again
    set_policy(&env, "apps/api", 1, &[("GATE_MAX_CRITICAL", "1")]).await;
    let key = env.key("apps/api:v1");
    let evaluation = archgate::evaluate::evaluate(&env.pipeline, &key)
        .await
        .expect("evaluation");

    // Then it is published under version 1, and the default repository's release is not
    assert_eq!(evaluation.phase, Phase::Published);
    let api = record(&env, "apps/api:v1").await;
    let amd64 = api.scans.iter().rfind(|s| s.arch == Arch::Amd64).unwrap();
    assert!(amd64.verdict.passes());
    assert_eq!(amd64.policy_version, Some(1));
    assert_eq!(record(&env, "v1").await.phase(), Phase::Blocked);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_that_cannot_be_read_judges_nothing_until_it_is_fixed() {
    // Given a release of apps/web waiting for its scans, and apps/web's policy item damaged
    let env = installation_with_namespace("apps/", REGION).await;
    candidate_ready(&env, "apps/web:v2").await;
    env.clients
        .dynamodb
        .put_item()
        .table_name(&env.config.ledger_table)
        .item("pk", AttributeValue::S("policy:apps/web".into()))
        .item("version", AttributeValue::N("3".into()))
        .item(
            "doc",
            AttributeValue::S("{\"repository\": \"apps/web\", ".into()),
        )
        .send()
        .await
        .unwrap();

    // When its clean scan arrives
    let event = env
        .scan_arch_image("apps/web:v2", Arch::Amd64, "COMPLETE", &[])
        .await
        .unwrap();
    let answer = env.scan_gate(event).await;

    // Then the gate does not judge with defaults it was not given: the invocation fails
    // (retried, then dead-lettered) and nothing is recorded
    assert_eq!(status(&answer), "error", "{answer}");
    assert_eq!(
        answer["error_type"], "Archgate.PolicyUnreadable",
        "{answer}"
    );
    assert!(record(&env, "apps/web:v2").await.scans.is_empty());

    // When the policy is written again (version 4) and the scans are delivered again
    set_policy(&env, "apps/web", 4, &[("GATE_MAX_HIGH", "5")]).await;
    scan_both(&env, "apps/web:v2", &[]).await;

    // Then the release is judged under version 4 and published
    let release = record(&env, "apps/web:v2").await;
    assert_eq!(release.phase(), Phase::Published);
    assert_eq!(versions(&release), [Some(4), Some(4)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_retention_covers_every_managed_repository_under_its_own_policy() {
    // Given two published releases in each of apps/web and apps/api, apps/web keeping only its
    // newest release (version 1) and the environment keeping every release
    let env = installation_with_namespace("apps/", REGION).await;
    set_policy(&env, "apps/web", 1, &[("RETENTION_KEEP_RELEASES", "1")]).await;
    for release in ["apps/web:r1", "apps/api:r1", "apps/web:r2", "apps/api:r2"] {
        publish(&env, release).await;
    }

    // When the scheduled run goes, configured with the default repository alone
    let retention = env.clients.retention(env.retention_config(&[]));
    let report = archgate::retention::run(&retention, Request::default()).await;

    // Then it covers the repositories with releases in the ledger too, and only apps/web's
    // older release expires
    let covered: Vec<&str> = report
        .repositories
        .iter()
        .map(|r| r.repository.as_str())
        .collect();
    assert_eq!(covered, ["apps/api", "apps/web", "myapp"], "{report:?}");
    assert_eq!(record(&env, "apps/web:r1").await.phase(), Phase::Expired);
    for release in ["apps/web:r2", "apps/api:r1", "apps/api:r2"] {
        assert_eq!(
            record(&env, release).await.phase(),
            Phase::Published,
            "{release}"
        );
    }
}
