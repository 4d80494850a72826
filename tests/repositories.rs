//! Repositories on first use, on the emulator outside us-east-1: created once with archgate's
//! settings however many first releases race for them. (The shape of an
//! IMMUTABLE_WITH_EXCLUSION request, which moto cannot emulate, is in specs/adapters.rs.)

use archgate::aws::EcrRegistry;
use archgate::domain::repository::{Ensured, RepositorySettings};
use archgate::ports::Registry;
use archgate_testkit::emulator::{self, Emulator};
use aws_sdk_ecr::types::{EncryptionType, ImageTagMutability};

const REGION: &str = "eu-west-1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_releases_create_their_repository_once() {
    // Given a registry without the repository, and moving tags too many for ECR's filters
    let moto = Emulator::start()
        .unwrap_or_else(|e| panic!("the local AWS emulator is required for this test: {e}"));
    let client = aws_sdk_ecr::Client::new(&emulator::sdk_config_in(moto.endpoint(), REGION).await);
    let registry = EcrRegistry::new(client.clone());
    let moving = vec!["latest".to_owned(), "stable".to_owned()];
    let settings = RepositorySettings::new(None, &moving);

    // When six first releases make sure it exists at once
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let (registry, settings) = (registry.clone(), settings.clone());
            tokio::spawn(async move { registry.ensure_repository("apps/web", &settings).await })
        })
        .collect();
    let mut ensured = Vec::new();
    for task in tasks {
        ensured.push(task.await.unwrap().expect("CreateRepository answered"));
    }

    // Then one created it and five found it
    assert_eq!(
        ensured.iter().filter(|e| **e == Ensured::Created).count(),
        1
    );
    assert_eq!(
        ensured.iter().filter(|e| **e == Ensured::Existed).count(),
        5
    );
    // And it scans on push, is encrypted with AES256 and, with two moving tags, is mutable
    let described = client
        .describe_repositories()
        .repository_names("apps/web")
        .send()
        .await
        .unwrap();
    let repository = &described.repositories()[0];
    assert!(repository
        .image_scanning_configuration()
        .is_some_and(|c| c.scan_on_push()));
    assert_eq!(
        repository
            .encryption_configuration()
            .map(|e| e.encryption_type().clone()),
        Some(EncryptionType::Aes256)
    );
    assert_eq!(
        repository.image_tag_mutability(),
        Some(&ImageTagMutability::Mutable)
    );
}
