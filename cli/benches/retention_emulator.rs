//! Retention's untagged cleanup on the emulator against a naive baseline, in the same run, on
//! two identical 8,000-image repositories: 1,500 published releases in the ledger (a tagged
//! index and two children pushed by digest, untagged: 4,500 images that must stay), 500
//! stale untagged indexes with two children each and 2,000 stale untagged images (3,500
//! that may go).
//!
//! - naive: DescribeImages, then BatchDeleteImage of every untagged image, 100 at a time, one
//!   call after the other; it reads no manifest, so it also destroys the releases' children.
//! - archgate: the whole run (inventory, the manifests that can reference others read in
//!   concurrent batches, ledger, plan, deletions in concurrent batches wave by wave).
//!
//! `cargo bench -p archgate-cli --bench retention_emulator` (or `./dev bench`).

mod support;

use archgate::aws::{DynamoLedger, EcrRegistry, EventBridgePublisher};
use archgate::domain::oci::OCI_INDEX;
use archgate::domain::retention::{ReleasePolicy, RetentionPolicy};
use archgate::domain::{Digest, ManifestMode, Millis};
use archgate::ports::Ledger;
use archgate::ports::{Clock, SystemClock};
use archgate::retention::{apply_plan, survey_repository, Rules, Targets};
use archgate_cli::local::{default_config, LocalEnv};
use aws_sdk_ecr::types::ImageIdentifier;
use std::collections::HashSet;
use std::time::{Duration, Instant};
use support::{fill, published, repository_images};

const RELEASES: usize = 1_500;
const STALE_INDEXES: usize = 500;
const STRAYS: usize = 2_000;
const DAY: Millis = 86_400_000;

/// Every image digest of a repository.
async fn digests(ecr: &aws_sdk_ecr::Client, name: &str) -> HashSet<String> {
    let mut all = HashSet::new();
    let mut pages = ecr
        .describe_images()
        .repository_name(name)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.expect("DescribeImages answers");
        all.extend(
            page.image_details()
                .iter()
                .filter_map(|d| d.image_digest().map(str::to_owned)),
        );
    }
    all
}

/// DescribeImages then BatchDeleteImage of every untagged image, sequentially.
async fn naive(ecr: &aws_sdk_ecr::Client, name: &str) -> (Duration, usize) {
    let started = Instant::now();
    let mut untagged = Vec::new();
    let mut calls = 0;
    let mut pages = ecr
        .describe_images()
        .repository_name(name)
        .max_results(1000)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        calls += 1;
        let page = page.expect("DescribeImages answers");
        for detail in page.image_details() {
            if detail.image_tags().is_empty() {
                untagged.extend(detail.image_digest().map(str::to_owned));
            }
        }
    }
    for batch in untagged.chunks(100) {
        calls += 1;
        let ids = batch
            .iter()
            .map(|d| ImageIdentifier::builder().image_digest(d).build())
            .collect();
        ecr.batch_delete_image()
            .repository_name(name)
            .set_image_ids(Some(ids))
            .send()
            .await
            .expect("BatchDeleteImage answers");
    }
    (started.elapsed(), calls)
}

#[tokio::main]
async fn main() {
    let env = LocalEnv::start(default_config(ManifestMode::Native))
        .await
        .expect("the emulator is required");
    let ecr = &env.clients.ecr;
    let (images, needed) = repository_images("", RELEASES, STALE_INDEXES, STRAYS);
    let filling = Instant::now();
    fill(ecr, "bench-naive", &images).await;
    fill(ecr, "bench-archgate", &images).await;
    let ledger = DynamoLedger::new(env.clients.dynamodb.clone(), &env.config.ledger_table);
    let pushed = SystemClock.now_millis();
    for index in images.iter().filter(|i| i.tag.is_some()) {
        ledger
            .save(&published("bench-archgate", index, pushed), None)
            .await
            .expect("the release is recorded");
    }
    let filled = filling.elapsed();

    let (naive_time, naive_calls) = naive(ecr, "bench-naive").await;
    let left = digests(ecr, "bench-naive").await;
    let naive_deleted = images.len() - left.len();
    let destroyed = needed.iter().filter(|d| !left.contains(*d)).count();

    // Everything was pushed moments ago: plan a month later so all of it is old.
    let now = SystemClock.now_millis() + 30 * DAY;
    let rules = Rules {
        images: RetentionPolicy {
            untagged_age_ms: 7 * DAY,
            max_delete_share: 0.5,
            delete_orphan_referrers: false,
            force: false,
        },
        releases: ReleasePolicy::default(),
    };
    let inventory = EcrRegistry::new(ecr.clone());
    // Where a run's time goes on the emulator: each read alone, once, before the run.
    let part = Instant::now();
    let listed = archgate::ports::RepositoryInventory::list_images(&inventory, "bench-archgate")
        .await
        .expect("DescribeImages answers");
    let describe = part.elapsed();
    let part = Instant::now();
    ledger.list(usize::MAX).await.expect("the ledger answers");
    let scan = part.elapsed();
    let stale: Vec<Digest> = listed
        .iter()
        .filter(|i| i.tags.is_empty() && i.media_type.as_deref() == Some(OCI_INDEX))
        .map(|i| i.digest.clone())
        .collect();
    let part = Instant::now();
    archgate::ports::RepositoryInventory::manifests_by_digest(
        &inventory,
        "bench-archgate",
        &stale[..100],
    )
    .await
    .expect("BatchGetImage answers");
    let one_read = part.elapsed();
    let started = Instant::now();
    let survey = survey_repository(&inventory, &ledger, "bench-archgate", &rules, &[], now)
        .await
        .expect("the survey runs");
    let surveyed = started.elapsed();
    let report = apply_plan(
        &Targets {
            inventory: &inventory,
            ledger: &ledger,
            events: None::<&EventBridgePublisher>,
        },
        "bench-archgate",
        &survey,
        false,
    )
    .await
    .expect("the cleanup runs");
    let archgate_time = started.elapsed();
    let left = digests(ecr, "bench-archgate").await;
    let lost = needed.iter().filter(|d| !left.contains(*d)).count();
    let read = survey.manifests_read;

    let s = |d: Duration| format!("{:.1} s", d.as_secs_f64());
    println!(
        "## Untagged cleanup on the emulator ({} images, {} of them needed by releases)",
        images.len(),
        needed.len()
    );
    println!();
    println!("| | naive baseline | archgate |");
    println!("|---|---|---|");
    println!("| whole run | {} | {} |", s(naive_time), s(archgate_time));
    println!(
        "| of which survey (inventory, manifest reads, ledger, plan) | – | {} |",
        s(surveyed)
    );
    println!(
        "| parts, each alone: DescribeImages (all pages) / ledger Scan / one BatchGetImage of 100 | – | {} / {} / {} |",
        s(describe),
        s(scan),
        s(one_read)
    );
    println!(
        "| manifests read | 0 | {read} (indexes the ledger does not hold; images that cannot reference others are not read) |"
    );
    println!(
        "| images deleted | {naive_deleted} | {} |",
        images.len() - left.len()
    );
    println!("| images releases needed, deleted | {destroyed} | {lost} |");
    println!("| AWS calls | {naive_calls} | {} |", report.aws_calls);
    println!();
    println!(
        "(Filling the two repositories took {}; moto answers DescribeImages in one page.)",
        s(filled)
    );
    assert_eq!(lost, 0, "archgate deleted images releases need");
}
