//! archgate's retention against a naive cleanup on a *latency model of ECR*, on identical
//! fresh copies of the same repository. The emulator (moto) costs every BatchGetImage in
//! proportion to the repository's size and says nothing about real ECR; here the state is
//! the in-memory registry and ledger (`archgate_testkit::memory`), and each real ECR call is charged
//! its modelled time on tokio's paused (virtual) clock. (The listing goes through [`State`],
//! an O(images + tags) equivalent of the in-memory registry's own; the whole bench still
//! takes minutes of CPU, mostly the in-memory registry's deletes, whose tag lookup is linear.)
//!
//! # The model
//!
//! Every real ECR call the port call makes (as `aws/ecr/inventory.rs` makes them:
//! `list_images` = one DescribeImages per page of 1,000, `manifests_by_digest` = one
//! BatchGetImage per 100 digests one after the other, `delete_images` and `untag` = one
//! BatchDeleteImage per 100, one after the other) first waits for a token of its
//! operation's bucket, then for its latency:
//!
//! | operation | latency per call | request rate (token bucket, burst = 1 s of rate) |
//! |---|---|---|
//! | DescribeImages (page of up to 1,000) | 300 ms | 20/s (assumed: no published quota) |
//! | BatchGetImage (up to 100 ids) | 150 ms | 2,000/s (ECR's documented service quota) |
//! | BatchDeleteImage (up to 100 ids) | 250 ms | 20/s (assumed: no published quota) |
//! | DescribeRepositories (a page) | 100 ms | 20/s (assumed: no published quota) |
//!
//! Why these numbers: AWS publishes no per-call latency for ECR. These are the order of
//! magnitude of a cross-AZ API call that returns (or, for a delete, processes) up to about
//! 1 MB of JSON: a page of 1,000 image details, 100 manifests, 100 deletions. What matters
//! for the comparison is that both cleanups are charged by the same model, call for call.
//!
//! Not modelled: the DynamoDB ledger is the in-memory one and its reads are free (in reality
//! retention Scans the whole ledger table, concurrently with its first manifest reads: the
//! bench prints the table's size); network variance and tail latency; throttling errors and
//! the SDK's retries (a call over the rate waits for its token instead); the CPU time of
//! planning (printed apart, measured on this machine).
//!
//! # The cleanups
//!
//! - archgate: `plan_repository` then `apply_plan`, for real (not a dry run), with the
//!   safety valve opened wide (`max_delete_share` 1.0) so it never refuses.
//! - naive: what awslabs' ecr-cleanup-lambda does with untagged images: DescribeImages to
//!   the last page, then BatchDeleteImage of every untagged image older than the retention
//!   age, 100 per call, one call after the other. (The original uses the default page size,
//!   100, i.e. 10× the DescribeImages calls, and ignores the age; this baseline is given the
//!   same 1,000-image pages as archgate.)
//!
//! `cargo bench -p archgate-benches --bench retention_model`

use archgate::domain::attestation::referrer::EMPTY_CONFIG_MEDIA_TYPE;
use archgate::domain::attestation::{Attestation, AttestationKind, Descriptor, Envelope};
use archgate::domain::oci::{RawManifest, OCI_INDEX, OCI_MANIFEST};
use archgate::domain::release::{Candidate, CandidateChild, EventKind, Publication};
use archgate::domain::retention::{ReleasePolicy, RetentionPolicy};
use archgate::domain::{
    Arch, BuildStatus, Digest, ManifestMode, Millis, Release, ReleaseKey, ReleaseTag, SourceObject,
};
use archgate::error::AdapterError;
use archgate::ports::{
    DeleteResult, FetchedManifest, ImageSummary, Ledger, Registry, RepositoryInventory,
    BATCH_LIMIT, LIST_PAGE,
};
use archgate::retention::{
    apply_plan, plan_repository, plan_survey, Rules, Targets, DELETE_CONCURRENCY, READ_CONCURRENCY,
};
use archgate_testkit::memory::{Chaos, ManualClock, MemoryEvents, MemoryLedger, MemoryRegistry};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

const REPOSITORY: &str = "myapp";
const DAY: Millis = 86_400_000;
/// The run's "now" (fixed, so every run is the same).
const NOW: Millis = 1_750_000_000_000;
const RETENTION_AGE: Millis = 7 * DAY;
/// DynamoDB Scan returns at most 1 MB a page.
const SCAN_PAGE_BYTES: usize = 1 << 20;

// ------------------------------------------------------------------------------------------
// The latency model.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    DescribeImages,
    BatchGetImage,
    BatchDeleteImage,
    DescribeRepositories,
}

impl Op {
    const ALL: [Op; 4] = [
        Op::DescribeImages,
        Op::BatchGetImage,
        Op::BatchDeleteImage,
        Op::DescribeRepositories,
    ];

    fn name(self) -> &'static str {
        match self {
            Op::DescribeImages => "DescribeImages",
            Op::BatchGetImage => "BatchGetImage",
            Op::BatchDeleteImage => "BatchDeleteImage",
            Op::DescribeRepositories => "DescribeRepositories",
        }
    }

    /// Latency of one call.
    fn latency(self) -> Duration {
        Duration::from_millis(match self {
            Op::DescribeImages => 300,
            Op::BatchGetImage => 150,
            Op::BatchDeleteImage => 250,
            Op::DescribeRepositories => 100,
        })
    }

    /// Requests per second the bucket refills.
    fn rate(self) -> f64 {
        match self {
            // ECR's documented quota ("Rate of BatchGetImage requests").
            Op::BatchGetImage => 2_000.0,
            // No published quota: assumed.
            Op::DescribeImages | Op::BatchDeleteImage | Op::DescribeRepositories => 20.0,
        }
    }

    fn slot(self) -> usize {
        self as usize
    }
}

/// A token bucket holding one second of its rate; a call that finds it empty reserves the
/// next token and waits for it (reservations queue up in arrival order).
struct Bucket {
    rate: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn new(rate: f64, now: Instant) -> Self {
        Bucket {
            rate,
            tokens: rate,
            at: now,
        }
    }

    /// How long the caller waits for its token.
    fn reserve(&mut self, now: Instant) -> Duration {
        let refill = now.saturating_duration_since(self.at).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + refill).min(self.rate);
        self.at = now;
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }
}

/// What one operation cost in a run.
#[derive(Clone, Copy, Debug, Default)]
struct OpStats {
    calls: usize,
    /// When the first call was issued and the last answer came, since the run started.
    first: Option<Duration>,
    last: Option<Duration>,
    /// Sum of the calls' latencies (the span times the mean number of calls in flight).
    busy: Duration,
    /// Sum of the time calls waited for a token.
    throttled: Duration,
}

struct Meter {
    started: Instant,
    buckets: Vec<Bucket>,
    ops: [OpStats; 4],
    listed: usize,
    read: usize,
}

/// A [`RepositoryInventory`] that charges each real ECR call of the inner one its modelled
/// time on tokio's clock, and counts the calls.
struct Modeled<I> {
    inner: I,
    meter: Mutex<Meter>,
}

impl<I: RepositoryInventory> Modeled<I> {
    fn new(inner: I) -> Self {
        let now = Instant::now();
        Modeled {
            inner,
            meter: Mutex::new(Meter {
                started: now,
                buckets: Op::ALL
                    .iter()
                    .map(|op| Bucket::new(op.rate(), now))
                    .collect(),
                ops: [OpStats::default(); 4],
                listed: 0,
                read: 0,
            }),
        }
    }

    fn meter(&self) -> std::sync::MutexGuard<'_, Meter> {
        self.meter.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One real ECR call of `op`: its token, then its latency.
    async fn call(&self, op: Op) {
        let issued = Instant::now();
        let wait = self.meter().buckets[op.slot()].reserve(issued);
        tokio::time::sleep(wait).await;
        tokio::time::sleep(op.latency()).await;
        let answered = Instant::now();
        let mut meter = self.meter();
        let (first, last) = (
            issued.duration_since(meter.started),
            answered.duration_since(meter.started),
        );
        let stats = &mut meter.ops[op.slot()];
        stats.calls += 1;
        stats.first = Some(stats.first.map_or(first, |f| f.min(first)));
        stats.last = Some(stats.last.map_or(last, |l| l.max(last)));
        stats.busy += op.latency();
        stats.throttled += wait;
    }

    fn report(&self) -> ([OpStats; 4], usize, usize) {
        let meter = self.meter();
        (meter.ops, meter.listed, meter.read)
    }
}

impl<I: RepositoryInventory> RepositoryInventory for Modeled<I> {
    async fn list_images(&self, repository: &str) -> Result<Vec<ImageSummary>, AdapterError> {
        let images = self.inner.list_images(repository).await?;
        for _ in 0..images.len().div_ceil(LIST_PAGE).max(1) {
            self.call(Op::DescribeImages).await;
        }
        self.meter().listed += images.len();
        Ok(images)
    }

    async fn manifests_by_digest(
        &self,
        repository: &str,
        digests: &[Digest],
    ) -> Result<Vec<(Digest, FetchedManifest)>, AdapterError> {
        let mut fetched = Vec::with_capacity(digests.len());
        for batch in digests.chunks(BATCH_LIMIT) {
            self.call(Op::BatchGetImage).await;
            fetched.extend(self.inner.manifests_by_digest(repository, batch).await?);
            self.meter().read += batch.len();
        }
        Ok(fetched)
    }

    async fn delete_images(
        &self,
        repository: &str,
        digests: &[Digest],
    ) -> Result<DeleteResult, AdapterError> {
        let mut result = DeleteResult::default();
        for batch in digests.chunks(BATCH_LIMIT) {
            self.call(Op::BatchDeleteImage).await;
            let answer = self.inner.delete_images(repository, batch).await?;
            result.deleted.extend(answer.deleted);
            result.failed.extend(answer.failed);
        }
        Ok(result)
    }

    async fn untag(
        &self,
        repository: &str,
        tags: &[String],
    ) -> Result<Vec<(String, String)>, AdapterError> {
        let mut failed = Vec::new();
        for batch in tags.chunks(BATCH_LIMIT) {
            self.call(Op::BatchDeleteImage).await;
            failed.extend(self.inner.untag(repository, batch).await?);
        }
        Ok(failed)
    }

    async fn repositories(&self, prefix: &str) -> Result<Vec<String>, AdapterError> {
        let names = self.inner.repositories(prefix).await?;
        for _ in 0..names.len().div_ceil(1000).max(1) {
            self.call(Op::DescribeRepositories).await;
        }
        Ok(names)
    }
}

/// The in-memory registry, listed in O(images + tags). Its own `list_images` looks up each
/// image's tags by scanning every tag (O(images × tags): some 10^9 digest comparisons per
/// listing at 100,000 images, minutes of this bench); this one answers the same listing
/// (checked against it at 10,000 images) from the same state. Everything else is the
/// in-memory registry's own.
struct State(MemoryRegistry<ManualClock>);

impl RepositoryInventory for State {
    async fn list_images(&self, repository: &str) -> Result<Vec<ImageSummary>, AdapterError> {
        Ok(self.0.inspect(repository, |repo| {
            let mut tags: HashMap<&Digest, Vec<String>> = HashMap::new();
            for (tag, digest) in &repo.tags {
                tags.entry(digest).or_default().push(tag.clone());
            }
            repo.images
                .iter()
                .map(|(digest, image)| ImageSummary {
                    digest: digest.clone(),
                    tags: tags.remove(digest).unwrap_or_default(),
                    pushed_at: image.pushed_at,
                    media_type: image.manifest.media_type.clone(),
                    artifact_media_type: image.artifact_media_type.clone(),
                    size_bytes: Some(image.manifest.bytes.len() as u64),
                })
                .collect()
        }))
    }

    async fn manifests_by_digest(
        &self,
        repository: &str,
        digests: &[Digest],
    ) -> Result<Vec<(Digest, FetchedManifest)>, AdapterError> {
        self.0.manifests_by_digest(repository, digests).await
    }

    async fn delete_images(
        &self,
        repository: &str,
        digests: &[Digest],
    ) -> Result<DeleteResult, AdapterError> {
        self.0.delete_images(repository, digests).await
    }

    async fn untag(
        &self,
        repository: &str,
        tags: &[String],
    ) -> Result<Vec<(String, String)>, AdapterError> {
        self.0.untag(repository, tags).await
    }

    async fn repositories(&self, prefix: &str) -> Result<Vec<String>, AdapterError> {
        self.0.repositories(prefix).await
    }
}

// ------------------------------------------------------------------------------------------
// The repository.

#[derive(Clone, Copy)]
struct Scenario {
    images: usize,
    /// archgate published the releases: the ledger records them.
    archgate: bool,
}

impl Scenario {
    fn name(self) -> String {
        format!(
            "{}k, {}",
            self.images / 1000,
            if self.archgate {
                "archgate's releases"
            } else {
                "not archgate's"
            }
        )
    }

    /// Releases: a tagged index, two untagged per-arch children, three untagged referrers of
    /// the index (a signature, the provenance and the gate's verdict): 30% of the images.
    fn releases(self) -> usize {
        self.images / 20
    }

    /// Untagged indexes nothing references, two children each: 7.5% of the images.
    fn stale_indexes(self) -> usize {
        self.images / 40
    }
}

/// A repository filled, and what the checks need to know about it.
struct Filled {
    registry: MemoryRegistry<ManualClock>,
    ledger: MemoryLedger,
    /// Every referrer with its subject.
    referrers: Vec<(Digest, Digest)>,
    /// The ledger's release items, serialised: how many bytes a Scan reads.
    ledger_bytes: usize,
}

fn age(days: i64) -> Millis {
    NOW - days * DAY
}

/// A single-platform image manifest (its config type makes it an image, never a referrer).
fn image(name: &str) -> RawManifest {
    let body = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": Digest::of(format!("config {name}").as_bytes()).to_string(), "size": 1469},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": Digest::of(format!("layer {name}").as_bytes()).to_string(), "size": 31_457_280}],
    });
    RawManifest {
        media_type: Some(OCI_MANIFEST.to_owned()),
        bytes: body.to_string().into_bytes(),
    }
}

/// An OCI index of an amd64 and an arm64 image.
fn index(children: &[RawManifest; 2]) -> RawManifest {
    let manifests: Vec<serde_json::Value> = children
        .iter()
        .zip(Arch::ALL)
        .map(|(child, arch)| {
            serde_json::json!({"mediaType": OCI_MANIFEST, "digest": Digest::of(&child.bytes).to_string(),
                               "size": child.bytes.len(), "platform": {"os": "linux", "architecture": arch.as_str()}})
        })
        .collect();
    let body =
        serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests});
    RawManifest {
        media_type: Some(OCI_INDEX.to_owned()),
        bytes: body.to_string().into_bytes(),
    }
}

/// A cosign-style signature as an OCI 1.1 referrer of `subject`.
fn signature(subject: &Descriptor, tag: &str) -> RawManifest {
    let payload = format!("{{\"critical\":{{\"image\":{{\"docker-manifest-digest\":\"{}\"}},\"type\":\"cosign container image signature\"}},\"optional\":{{\"tag\":\"{tag}\"}}}}", subject.digest);
    let body = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.dev.cosign.artifact.sig.v1+json",
        "config": {"mediaType": EMPTY_CONFIG_MEDIA_TYPE,
                   "digest": Digest::of(b"{}").to_string(), "size": 2},
        "layers": [{"mediaType": "application/vnd.dev.cosignproject.cosign/signature+json",
                    "digest": Digest::of(payload.as_bytes()).to_string(), "size": payload.len(),
                    "annotations": {"dev.cosignproject.cosign/signature": format!("MEUCIQ{}", Digest::of(tag.as_bytes()).hex())}}],
        "subject": subject,
    });
    RawManifest {
        media_type: Some(OCI_MANIFEST.to_owned()),
        bytes: body.to_string().into_bytes(),
    }
}

/// The attestations of a release (provenance and verdict, as promotion records and pushes
/// them); unsigned envelopes of a small statement are enough for retention.
fn attestations(tag: &str, index: &Digest) -> Vec<Attestation> {
    AttestationKind::ALL
        .iter()
        .map(|kind| {
            let statement = serde_json::json!({
                "_type": "https://in-toto.io/Statement/v1",
                "subject": [{"name": format!("{REPOSITORY}:{tag}"), "digest": {"sha256": index.hex()}}],
                "predicateType": kind.predicate_type(),
                "predicate": {"release": tag},
            });
            let envelope = Envelope::unsigned(statement.to_string().as_bytes()).to_bytes();
            Attestation {
                kind: *kind,
                envelope: String::from_utf8(envelope).expect("an envelope is JSON"),
            }
        })
        .collect()
}

/// The ledger record of a published release (as the emulator bench records them).
fn published(
    tag: &str,
    index: &RawManifest,
    children: &[Digest; 2],
    attestations: Vec<Attestation>,
    at: Millis,
) -> Release {
    let tag = ReleaseTag::parse(tag).expect("a valid tag");
    let source = SourceObject {
        bucket: "sources".into(),
        key: format!("releases/{tag}.zip"),
        version_id: Some("1".into()),
        etag: None,
        size: None,
        uploaded_at: Some(at),
        sequencer: None,
    };
    let mut release = Release::new(
        ReleaseKey::new(REPOSITORY, tag.clone()),
        source,
        ManifestMode::Native,
        at,
    );
    for (arch, child) in Arch::ALL.iter().zip(children) {
        let build = match arch {
            Arch::Amd64 => &mut release.amd64,
            Arch::Arm64 => &mut release.arm64,
        };
        build.build_id = Some(format!("{tag}-{arch}:1"));
        build.status = Some(BuildStatus::Succeeded);
        build.image_digest = Some(child.clone());
    }
    release.candidate = Some(Candidate {
        tag: tag.candidate_tag(),
        digest: Digest::of(&index.bytes),
        children: Arch::ALL
            .iter()
            .zip(children)
            .map(|(arch, digest)| CandidateChild {
                arch: *arch,
                digest: digest.clone(),
            })
            .collect(),
        manifest: Some(String::from_utf8(index.bytes.clone()).expect("an index is JSON")),
        media_type: Some(OCI_INDEX.to_owned()),
    });
    release.published = Some(Publication {
        tags: vec![tag.to_string()],
        at,
    });
    release.emitted = vec![
        EventKind::Started,
        EventKind::CandidateReady,
        EventKind::Published,
    ];
    release.attestations = attestations;
    release
}

/// Fills a fresh registry (and ledger): the same images every time.
async fn fill(scenario: Scenario) -> Filled {
    let clock = ManualClock::at(NOW);
    let chaos = Chaos::default();
    let registry = MemoryRegistry::new(chaos.clone(), clock.clone());
    let ledger = MemoryLedger::new(chaos);
    registry.create_repository(REPOSITORY, false);
    let mut referrers = Vec::new();
    let mut ledger_bytes = 0;
    let mut pushed = 0;

    for n in 0..scenario.releases() {
        // A tenth of the releases are a day old, the rest a month.
        let at = age(if n % 10 == 0 { 1 } else { 30 });
        clock.set(at);
        let children = [
            image(&format!("release {n} amd64")),
            image(&format!("release {n} arm64")),
        ];
        let child_digests = children.clone().map(|c| registry.push(REPOSITORY, None, c));
        let top = index(&children);
        let tag = format!("release-{n}");
        let top_digest = registry.push(REPOSITORY, Some(&tag), top.clone());
        let subject = Descriptor::of(OCI_INDEX, &top.bytes);
        let attestations = attestations(&tag, &top_digest);
        for attestation in &attestations {
            let referrer = attestation.referrer(subject.clone());
            registry
                .upload_blobs(REPOSITORY, &referrer.blobs)
                .await
                .expect("the blobs are uploaded");
            let manifest = RawManifest {
                media_type: Some(OCI_MANIFEST.to_owned()),
                bytes: referrer.manifest,
            };
            registry
                .put_image(REPOSITORY, None, &manifest, &referrer.digest)
                .await
                .expect("the attestation is pushed");
            referrers.push((referrer.digest, top_digest.clone()));
        }
        let signature = signature(&subject, &tag);
        let signature_digest = Digest::of(&signature.bytes);
        registry
            .put_image(REPOSITORY, None, &signature, &signature_digest)
            .await
            .expect("the signature is pushed");
        referrers.push((signature_digest, top_digest.clone()));
        pushed += 6;
        if scenario.archgate {
            let release = published(&tag, &top, &child_digests, attestations, at);
            ledger_bytes += serde_json::to_string(&release)
                .expect("a release serialises")
                .len();
            ledger
                .save(&release, None)
                .await
                .expect("the release is recorded");
        }
    }

    for n in 0..scenario.stale_indexes() {
        clock.set(age(if n % 10 == 0 { 1 } else { 30 }));
        let children = [
            image(&format!("stale {n} amd64")),
            image(&format!("stale {n} arm64")),
        ];
        for child in children.clone() {
            registry.push(REPOSITORY, None, child);
        }
        registry.push(REPOSITORY, None, index(&children));
        pushed += 3;
    }

    // Plain images: a third tagged, a fifth a day old.
    let mut n = 0;
    while pushed < scenario.images {
        clock.set(age(if n % 5 == 0 { 1 } else { 30 }));
        let tag = (n % 3 == 0).then(|| format!("build-{n}"));
        registry.push(REPOSITORY, tag.as_deref(), image(&format!("plain {n}")));
        n += 1;
        pushed += 1;
    }
    clock.set(NOW);
    let stored = registry.inspect(REPOSITORY, |repo| repo.images.len());
    assert_eq!(stored, scenario.images, "every image is distinct");
    if scenario.images <= 10_000 {
        let state = State(registry.clone());
        assert_eq!(
            state.list_images(REPOSITORY).await.expect("listed"),
            registry.list_images(REPOSITORY).await.expect("listed"),
            "the fast listing is the in-memory registry's"
        );
    }
    Filled {
        registry,
        ledger,
        referrers,
        ledger_bytes,
    }
}

/// Images a kept image references that are gone: the children of every surviving tagged
/// index, and every referrer whose subject survives.
fn referenced_but_deleted(filled: &Filled) -> usize {
    filled.registry.inspect(REPOSITORY, |repo| {
        let tagged: HashSet<&Digest> = repo.tags.values().collect();
        let children = tagged
            .iter()
            .flat_map(|index| repo.children_of(index))
            .filter(|child| !repo.images.contains_key(child))
            .count();
        let referrers = filled
            .referrers
            .iter()
            .filter(|(referrer, subject)| {
                repo.images.contains_key(subject) && !repo.images.contains_key(referrer)
            })
            .count();
        children + referrers
    })
}

// ------------------------------------------------------------------------------------------
// The runs.

struct Outcome {
    wall: Duration,
    ops: [OpStats; 4],
    listed: usize,
    read: usize,
    deleted: usize,
    /// Deletions the registry refused (ImageReferencedByManifestList).
    refused: usize,
    lost: usize,
    /// archgate only: when the survey ended (the rest is the apply).
    surveyed: Option<Duration>,
    /// archgate only: images and BatchDeleteImage calls per deletion wave.
    waves: Vec<(usize, usize)>,
    /// archgate only: the pure planning on this machine (not in the model).
    plan_cpu: Option<Duration>,
}

fn policy() -> RetentionPolicy {
    RetentionPolicy {
        untagged_age_ms: RETENTION_AGE,
        max_delete_share: 1.0,
        delete_orphan_referrers: false,
        force: false,
    }
}

async fn archgate(scenario: Scenario) -> (Outcome, usize) {
    let filled = fill(scenario).await;
    let inventory = Modeled::new(State(filled.registry.clone()));
    let started = Instant::now();
    let survey = plan_repository(&inventory, &filled.ledger, REPOSITORY, &policy(), NOW)
        .await
        .expect("the survey runs");
    let surveyed = started.elapsed();
    assert!(
        survey.plan.refused.is_none(),
        "the plan is refused: {:?}",
        survey.plan.refused
    );
    let report = apply_plan(
        &Targets {
            inventory: &inventory,
            ledger: &filled.ledger,
            events: None::<&MemoryEvents>,
        },
        REPOSITORY,
        &survey,
        false,
    )
    .await
    .expect("the cleanup runs");
    let wall = started.elapsed();

    let mut waves: BTreeMap<u32, usize> = BTreeMap::new();
    for deletion in &survey.plan.delete {
        *waves.entry(deletion.wave).or_default() += 1;
    }
    // The planning alone, timed on this machine.
    let listing = filled
        .ledger
        .list(usize::MAX)
        .await
        .expect("the ledger reads");
    let releases: Vec<&Release> = listing.releases.iter().map(|s| &s.release).collect();
    let rules = Rules {
        images: policy(),
        releases: ReleasePolicy::default(),
    };
    let cpu = std::time::Instant::now();
    let planned = plan_survey(
        REPOSITORY,
        &survey.images,
        &releases,
        &HashSet::new(),
        &[],
        &rules,
        NOW,
    );
    let plan_cpu = cpu.elapsed();
    assert_eq!(planned.images.delete.len(), survey.plan.delete.len());
    let (ops, listed, read) = inventory.report();
    assert_eq!(
        survey.manifests_read, read,
        "the survey counts the reads the model charged"
    );
    let outcome = Outcome {
        wall,
        ops,
        listed,
        read,
        deleted: report.deleted.len(),
        refused: report.failed.len(),
        lost: referenced_but_deleted(&filled),
        surveyed: Some(surveyed),
        waves: waves
            .values()
            .map(|&n| (n, n.div_ceil(BATCH_LIMIT)))
            .collect(),
        plan_cpu: Some(plan_cpu),
    };
    (outcome, filled.ledger_bytes)
}

/// DescribeImages to the last page, then BatchDeleteImage of every untagged image older than
/// the retention age, 100 a call, one call after the other.
async fn naive(scenario: Scenario) -> Outcome {
    let filled = fill(scenario).await;
    let inventory = Modeled::new(State(filled.registry.clone()));
    let started = Instant::now();
    let listed = inventory
        .list_images(REPOSITORY)
        .await
        .expect("DescribeImages answers");
    let old: Vec<Digest> = listed
        .into_iter()
        .filter(|i| i.tags.is_empty() && NOW - i.pushed_at > RETENTION_AGE)
        .map(|i| i.digest)
        .collect();
    let (mut deleted, mut refused) = (0, 0);
    for batch in old.chunks(BATCH_LIMIT) {
        let result = inventory
            .delete_images(REPOSITORY, batch)
            .await
            .expect("BatchDeleteImage answers");
        deleted += result.deleted.len();
        refused += result.failed.len();
    }
    let wall = started.elapsed();
    let (ops, listed, read) = inventory.report();
    Outcome {
        wall,
        ops,
        listed,
        read,
        deleted,
        refused,
        lost: referenced_but_deleted(&filled),
        surveyed: None,
        waves: Vec::new(),
        plan_cpu: None,
    }
}

// ------------------------------------------------------------------------------------------
// The report.

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

fn row(scenario: &str, cleanup: &str, o: &Outcome) {
    let calls = |op: Op| o.ops[op.slot()].calls;
    println!(
        "| {scenario} | {cleanup} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
        secs(o.wall),
        calls(Op::DescribeImages),
        calls(Op::BatchGetImage),
        calls(Op::BatchDeleteImage),
        calls(Op::DescribeRepositories),
        o.listed,
        o.read,
        o.deleted,
        o.lost,
    );
}

fn phases(scenario: &str, cleanup: &str, o: &Outcome) {
    for op in Op::ALL {
        let s = &o.ops[op.slot()];
        let (Some(first), Some(last)) = (s.first, s.last) else {
            continue;
        };
        let span = last - first;
        let in_flight = if span.is_zero() {
            0.0
        } else {
            s.busy.as_secs_f64() / span.as_secs_f64()
        };
        println!(
            "| {scenario} | {cleanup} | {} | {} | {:.1} s → {:.1} s | {} | {} | {in_flight:.2} | {} |",
            op.name(),
            s.calls,
            first.as_secs_f64(),
            last.as_secs_f64(),
            secs(span),
            secs(s.busy),
            secs(s.throttled),
        );
    }
}

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() {
    let scenarios = [
        Scenario {
            images: 10_000,
            archgate: true,
        },
        Scenario {
            images: 10_000,
            archgate: false,
        },
        Scenario {
            images: 100_000,
            archgate: true,
        },
        Scenario {
            images: 100_000,
            archgate: false,
        },
    ];
    let mut results = Vec::new();
    for scenario in scenarios {
        let (ours, ledger_bytes) = archgate(scenario).await;
        let theirs = naive(scenario).await;
        results.push((scenario, ours, theirs, ledger_bytes));
    }

    println!("\n## Retention vs a naive cleanup on a latency model of ECR\n");
    println!(
        "Per real ECR call: DescribeImages page (1,000) 300 ms, BatchGetImage (≤100) 150 ms, \
         BatchDeleteImage (≤100) 250 ms, DescribeRepositories 100 ms; token buckets: \
         BatchGetImage 2,000/s (documented quota), the others 20/s (assumed). Virtual clock; \
         ledger reads free. archgate reads {READ_CONCURRENCY} BatchGetImage and deletes \
         {DELETE_CONCURRENCY} BatchDeleteImage at a time; the naive cleanup one call at a time.\n"
    );
    println!(
        "Each repository: 30% releases (tagged index, 2 untagged children, 3 untagged \
         referrers of the index: a signature, provenance, verdict), 7.5% untagged indexes \
         nothing references (2 children each), the rest plain images (a third tagged). A tenth \
         of the releases and stale indexes and a fifth of the plain images are 1 day old, the \
         rest 30 days; retention age 7 days.\n"
    );
    println!("| scenario | cleanup | modelled wall time | DescribeImages | BatchGetImage | BatchDeleteImage | DescribeRepositories | images listed | manifests read | images deleted | images a kept image references, deleted |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for (scenario, ours, theirs, _) in &results {
        row(&scenario.name(), "archgate", ours);
        row(&scenario.name(), "naive", theirs);
    }

    println!("\n| scenario | archgate / naive (modelled wall time) | goal ≤ 1.2× | archgate lost | naive lost |");
    println!("|---|---|---|---|---|");
    for (scenario, ours, theirs, _) in &results {
        let ratio = ours.wall.as_secs_f64() / theirs.wall.as_secs_f64();
        println!(
            "| {} | {ratio:.2}× | {} | {} | {} |",
            scenario.name(),
            if ratio <= 1.2 { "met" } else { "missed" },
            ours.lost,
            theirs.lost,
        );
    }

    println!("\n### Where the modelled time goes\n");
    println!("Span: from the first call issued to the last answer, on the run's clock. Calls in flight: sum of latencies / span (1.00 = one after the other).\n");
    println!("| scenario | cleanup | operation | calls | first call → last answer | span | sum of latencies | calls in flight | waiting for tokens |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for (scenario, ours, theirs, _) in &results {
        phases(&scenario.name(), "archgate", ours);
        phases(&scenario.name(), "naive", theirs);
    }
    println!();
    for (scenario, ours, theirs, ledger_bytes) in &results {
        let waves: Vec<String> = ours
            .waves
            .iter()
            .enumerate()
            .map(|(w, (images, calls))| format!("wave {w}: {images} images in {calls} calls"))
            .collect();
        println!(
            "- {}: archgate's survey ended at {}, its deletions took {} ({}); planning CPU on \
             this machine {:.0} ms (not modelled); ledger {} (not modelled: a Scan of ~{} page(s) \
             of 1 MB); the naive cleanup's BatchDeleteImage refused {} children an index still \
             lists, archgate's {}.",
            scenario.name(),
            secs(ours.surveyed.unwrap_or_default()),
            secs(ours.wall - ours.surveyed.unwrap_or_default()),
            waves.join(", "),
            ours.plan_cpu.unwrap_or_default().as_secs_f64() * 1000.0,
            if scenario.archgate {
                format!(
                    "{} releases, {:.1} MB",
                    scenario.releases(),
                    *ledger_bytes as f64 / 1e6
                )
            } else {
                "empty".to_owned()
            },
            ledger_bytes.div_ceil(SCAN_PAGE_BYTES).max(1),
            theirs.refused,
            ours.refused,
        );
    }

    for (scenario, ours, _, _) in &results {
        assert_eq!(
            ours.lost,
            0,
            "{}: archgate deleted images kept images reference",
            scenario.name()
        );
    }
}
