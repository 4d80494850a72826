//! One scheduled retention run over many repositories on the emulator: 20 repositories of
//! 2,000 images each (per repository, 100 published releases in the ledger — a tagged index
//! and two children pushed by digest, untagged: 300 images that must stay — 200 stale
//! untagged indexes with two children each and 1,100 stale untagged images: 1,700 that may go),
//! each repository under its own policy, the whole run through `archgate::retention::run` as
//! the scheduled function runs it (workloads read, repositories resolved from `bench/*` and
//! the ledger, policies read, surveys, deletions, reports).
//!
//! `cargo bench -p archgate-cli --bench retention_repositories` (or `./dev bench`).

mod support;

use archgate::aws::DynamoLedger;
use archgate::config::{RETENTION_CONCURRENCY, RETENTION_MAX_DELETE_SHARE, RETENTION_REPOSITORIES};
use archgate::domain::policy::PolicyRecord;
use archgate::domain::{ManifestMode, Millis};
use archgate::ports::{Clock, Ledger, ShiftedClock, SystemClock};
use archgate::retention::{run, Request};
use archgate_cli::local::{default_config, LocalEnv};
use std::collections::HashSet;
use std::time::Instant;
use support::{fill, published, repository_images};

const REPOSITORIES: usize = 20;
const RELEASES: usize = 100;
const STALE_INDEXES: usize = 200;
const STRAYS: usize = 1_100;
const DAY: Millis = 86_400_000;

#[tokio::main]
async fn main() {
    let env = LocalEnv::start(default_config(ManifestMode::Native))
        .await
        .expect("the emulator is required");
    let ecr = &env.clients.ecr;
    let ledger = DynamoLedger::new(env.clients.dynamodb.clone(), &env.config.ledger_table);
    let filling = Instant::now();
    let pushed = SystemClock.now_millis();
    let mut needed = HashSet::new();
    let mut total = 0;
    for n in 0..REPOSITORIES {
        let name = format!("bench/service-{n:02}");
        let (images, keep) =
            repository_images(&format!("{name} "), RELEASES, STALE_INDEXES, STRAYS);
        fill(ecr, &name, &images).await;
        for index in images.iter().filter(|i| i.tag.is_some()) {
            ledger
                .save(&published(&name, index, pushed), None)
                .await
                .expect("the release is recorded");
        }
        // Every other repository has a policy of its own (release rules that keep them all).
        if n % 2 == 0 {
            let record = PolicyRecord {
                repository: name.clone(),
                version: 1,
                values: [("RETENTION_KEEP_DAYS".to_owned(), "3650".to_owned())].into(),
                updated_at: pushed,
            };
            ledger
                .save_policy(&record, None)
                .await
                .expect("the policy is stored");
        }
        needed.extend(keep);
        total += images.len();
    }
    let filled = filling.elapsed();

    // A month later, every stray is old; the scheduled run of the function.
    let config = env.retention_config(&[
        (RETENTION_REPOSITORIES, "bench/*"),
        (RETENTION_MAX_DELETE_SHARE, "0.9"),
        (RETENTION_CONCURRENCY, "4"),
    ]);
    let retention = env.clients.retention_at(
        config,
        ShiftedClock {
            offset_ms: 30 * DAY,
        },
    );
    let started = Instant::now();
    let report = run(&retention, Request::default()).await;
    let took = started.elapsed();

    let mut left = 0;
    for n in 0..REPOSITORIES {
        let name = format!("bench/service-{n:02}");
        let mut pages = ecr
            .describe_images()
            .repository_name(&name)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            left += page.expect("DescribeImages answers").image_details().len();
        }
    }
    let deleted: usize = report.repositories.iter().map(|r| r.deleted.len()).sum();
    let calls: usize = report.repositories.iter().map(|r| r.aws_calls).sum();
    let failed: Vec<_> = report
        .repositories
        .iter()
        .filter(|r| r.error.is_some() || r.refused.is_some())
        .collect();
    println!(
        "## One scheduled retention run over {REPOSITORIES} repositories of {} images ({total} in all)",
        total / REPOSITORIES
    );
    println!();
    println!("| | |");
    println!("|---|---|");
    println!(
        "| whole run (the function's `run`) | {:.1} s |",
        took.as_secs_f64()
    );
    println!("| repositories cleaned | {} |", report.repositories.len());
    println!(
        "| images deleted | {deleted} (of {}) |",
        REPOSITORIES * (STALE_INDEXES * 3 + STRAYS)
    );
    println!("| images left | {left} (the releases' {}) |", needed.len());
    println!("| AWS calls of the surveys and deletions | {calls} |");
    println!(
        "| repositories not started (time) | {} |",
        report.not_started.len()
    );
    println!();
    println!(
        "(Filling the repositories and the ledger took {:.1} s.)",
        filled.as_secs_f64()
    );
    assert!(failed.is_empty(), "repositories failed: {failed:?}");
    assert_eq!(left, needed.len(), "only the releases' images stay");
}
