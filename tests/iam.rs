//! The emulator that enforces IAM: the ground the least-privilege proofs stand on. moto checks
//! each request's signature and its caller's policies once its unsigned set-up calls are
//! spent (`INITIAL_NO_AUTH_ACTION_COUNT`), matching actions (not resources, for most services).
//! Its denials come as IAM's XML even from JSON services such as ECR (the real ones answer
//! `AccessDeniedException` in the service's protocol), so the SDK sees an unreadable 403.

use archgate_testkit::emulator::{self, Emulator, ENFORCE_IAM_AFTER};

const REGION: &str = "eu-west-1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enforcing_emulator_allows_what_a_policy_grants_and_denies_the_rest() {
    // Given an emulator that enforces IAM after the three calls that create a user who may
    // only describe ECR repositories
    let moto = Emulator::start_with(&[(ENFORCE_IAM_AFTER, "3")])
        .unwrap_or_else(|e| panic!("the local AWS emulator is required for this test: {e}"));
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:DescribeRepositories","Resource":"*"}]}"#;
    let user = emulator::create_user_with_policy(moto.endpoint(), "archgate-reader", policy)
        .expect("the user is created while the emulator lets calls through");
    let ecr =
        aws_sdk_ecr::Client::new(&emulator::sdk_config_as(moto.endpoint(), REGION, &user).await);

    // When the user describes the repositories, then that is allowed
    let described = ecr.describe_repositories().send().await;
    assert!(described.is_ok(), "{described:?}");

    // When the user creates a repository, then IAM denies it
    let created = ecr
        .create_repository()
        .repository_name("apps/web")
        .send()
        .await;
    // (moto answers a denial in IAM's XML even for JSON services, so it is read raw here)
    let error = created.expect_err("CreateRepository is not in the user's policy");
    let denial = error.raw_response().expect("the emulator answered");
    let body = String::from_utf8_lossy(denial.body().bytes().unwrap_or_default()).into_owned();
    assert_eq!(denial.status().as_u16(), 403, "{body}");
    assert!(
        body.contains("is not authorized to perform: ecr:CreateRepository"),
        "{body}"
    );

    // And a caller without credentials the emulator knows is refused too
    let stranger =
        aws_sdk_ecr::Client::new(&emulator::sdk_config_in(moto.endpoint(), REGION).await);
    assert!(stranger.describe_repositories().send().await.is_err());
}
