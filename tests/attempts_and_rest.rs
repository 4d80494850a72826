//! Rules 11 and 12 and their neighbours on the emulator, through the real handlers, the
//! reconciler and retention, outside us-east-1: an attempt's builds are its own (a late build
//! of an earlier attempt never enters the next one), every release comes to rest (an
//! assembly that keeps failing ends Failed at its deadline however often its retries touched
//! the record; a release whose signing key cannot sign is announced stalled, never failed,
//! and published once the key is fixed), names shaped like another image's signature tag
//! start nothing, retention frees a queued attempt without holding its builds, and scans of
//! an expired release's images are not errors.

use archgate::aws::{
    AwsWorkloads, CodeBuildBuilds, DynamoLedger, EcrRegistry, EventBridgePublisher, KmsSigner,
};
use archgate::config::ReconcilePolicy;
use archgate::config::{
    RETENTION_ATTEMPT_DAYS, RETENTION_KEEP_RELEASES, RETENTION_MAX_DELETE_SHARE, SIGNING_KEY,
};
use archgate::domain::release::{EventKind, CLAIM_LEASE_MS};
use archgate::domain::release_event::ReleaseEvent;
use archgate::domain::{Arch, BuildRole, Digest, Effect, Millis, Phase};
use archgate::error::AdapterError;
use archgate::pipeline::{Adapters, Pipeline};
use archgate::ports::{Clock, EventPublisher, Ports, ShiftedClock, SystemClock};
use archgate::retention::{Request, Retention};
use archgate::wiring::AwsPipeline;
use archgate_cli::local::{config_with, LocalEnv};
use archgate_integration_tests::releases::{manifest, publish, record};
use archgate_integration_tests::*;
use archgate_reconciler::handler::handle as reconcile;
use archgate_testkit::routing::dispatch;
use aws_sdk_codebuild::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_kms::types::{KeySpec, KeyUsageType};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

const REGION: &str = "eu-west-1";
const OTHER_REGION: &str = "ap-southeast-2";
const MINUTE: Millis = 60_000;
const HOUR: Millis = 60 * MINUTE;
const DAY: Millis = 24 * HOUR;
/// The template's reconciler: stale after 15 minutes, deadline 6 hours.
const POLICY: ReconcilePolicy = ReconcilePolicy {
    stale_after_ms: 15 * MINUTE,
    deadline_ms: 6 * HOUR,
};

// ---------------------------------------------------------------------------------------
// Rule 11: an attempt's builds are its own.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_build_of_an_earlier_attempt_never_enters_the_next_one() {
    // Given attempt 1 of a release: its arm64 build pushed its image, reported SUCCEEDED and
    // was then stopped (both state changes held back by EventBridge), and its amd64 build
    // FAILED, which fails the attempt
    let env = installation_in(ManifestMode::Native, REGION).await;
    let clock = Later::default();
    let answer = env.start_builds(upload(&env, KEY).await).await;
    assert_eq!(status(&answer), "applied", "{answer}");
    let (late_success, pushed) = env
        .finish_arch_build(TAG, Arch::Arm64, "SUCCEEDED", ImageShape::Manifest)
        .await
        .unwrap();
    let attempt_1_arm64 = pushed.expect("attempt 1's arm64 build pushed").digest;
    let (late_stop, _) = env
        .finish_arch_build(TAG, Arch::Arm64, "STOPPED", ImageShape::Manifest)
        .await
        .unwrap();
    let (failed, _) = env
        .finish_arch_build(TAG, Arch::Amd64, "FAILED", ImageShape::Manifest)
        .await
        .unwrap();
    let answer = env.build_completed(failed).await;
    assert_eq!(answer["phase"], "failed", "{answer}");
    let attempt_1 = record(&env, TAG).await;

    // When a new version of the key is uploaded while CodeBuild refuses StartBuild, and the
    // start-builds invocation dies there (its claims on the two starts stand until their
    // lease runs out: nobody else may start attempt 2's builds meanwhile)
    let dying = Outage::refusing_start_build().dying_there();
    let reupload = upload(&env, KEY).await;
    let answer = dispatch(&pipeline_in(&env, &dying, &clock), reupload.clone()).await;
    assert_eq!(status(&answer), "error", "{answer}");
    assert!(dying.refused.load(Ordering::SeqCst) >= 1, "{dying:?}");
    let waiting = record(&env, TAG).await;
    assert_eq!((waiting.attempt, waiting.phase()), (2, Phase::Building));
    assert!(waiting.arm64.build_id.is_none() && waiting.amd64.build_id.is_none());
    assert!(
        waiting
            .pending
            .iter()
            .any(|c| c.effect == Effect::StartBuild(BuildRole::Arm64)),
        "{:?}",
        waiting.pending
    );

    // And attempt 1's held-back arm64 events arrive before attempt 2 recorded any build
    // (before the fix the SUCCEEDED one filled attempt 2's empty arm64 slot, as "a
    // completion that overtook the invocation that started its build", and a STOPPED one
    // delivered first failed attempt 2)
    for late in [late_stop.clone(), late_success.clone(), late_stop.clone()] {
        let answer = env.build_completed(late).await;

        // Then each is ignored as a build of another attempt
        assert_eq!(status(&answer), "ignored", "{answer}");
        assert_eq!(answer["kind"], "build_of_other_attempt", "{answer}");
    }
    // And attempt 2 recorded nothing of them and is not failed
    let after = record(&env, TAG).await;
    assert_eq!((after.attempt, after.phase()), (2, Phase::Building));
    assert_eq!(
        after.arm64, waiting.arm64,
        "attempt 2's arm64 slot is untouched"
    );
    assert_eq!(after.amd64, waiting.amd64);

    // When, past the claims' lease and while CodeBuild still refuses, the late events come
    // again (Lambda's retries): their delivery takes up the starts nobody holds, which fail
    let refusing = Outage::refusing_start_build();
    clock.advance(CLAIM_LEASE_MS + MINUTE);
    for late in [late_stop.clone(), late_success.clone()] {
        let answer = dispatch(&pipeline_in(&env, &refusing, &clock), late).await;
        assert_eq!(status(&answer), "error", "{answer}");
        assert!(
            answer["error_message"]
                .as_str()
                .is_some_and(|m| m.contains("build")),
            "{answer}"
        );
    }

    // Then the late build still did not enter, attempt 2 is not failed, and the refused
    // starts are on record
    let still = record(&env, TAG).await;
    assert_eq!((still.attempt, still.phase()), (2, Phase::Building));
    assert!(still.arm64.build_id.is_none() && still.arm64.status.is_none());
    assert!(still.arm64.image_digest.is_none());
    let trouble = still
        .troubles
        .iter()
        .find(|t| t.effect == Effect::StartBuild(BuildRole::Arm64))
        .unwrap_or_else(|| panic!("{:?}", still.troubles));
    assert!(
        trouble.error.contains("AccountLimitExceeded"),
        "{trouble:?}"
    );

    // When CodeBuild takes StartBuild again and the upload event comes again
    let working = env.clients.pipeline_at(&env.config, clock.clone());
    calls(&env);
    let answer = dispatch(&working, reupload).await;

    // Then attempt 2 starts its own two builds
    assert_eq!(status(&answer), "applied", "{answer}");
    assert_eq!(count(&calls(&env), "CodeBuild.StartBuild"), 2);
    let started = record(&env, TAG).await;
    for role in [BuildRole::Amd64, BuildRole::Arm64] {
        let id = started.build(role).build_id.clone().expect("started");
        assert_ne!(Some(id), attempt_1.build(role).build_id, "{role}");
    }
    assert!(started.troubles.is_empty(), "{:?}", started.troubles);
    // and attempt 1's late success, delivered once more, still does not enter
    let answer = dispatch(&working, late_success).await;
    assert_eq!(answer["kind"], "build_of_other_attempt", "{answer}");

    // When attempt 2's own builds finish and both images pass the gate
    let mut own = BTreeMap::new();
    for arch in Arch::ALL {
        let (event, pushed) = env
            .finish_arch_build(TAG, arch, "SUCCEEDED", ImageShape::Manifest)
            .await
            .unwrap();
        own.insert(arch, pushed.expect("pushed").digest);
        let answer = dispatch(&working, event).await;
        assert_ne!(status(&answer), "error", "{answer}");
    }
    assert_ne!(own[&Arch::Arm64], attempt_1_arm64);
    for arch in Arch::ALL {
        let scan = env
            .scan_arch_image(TAG, arch, "COMPLETE", &[])
            .await
            .unwrap();
        let answer = dispatch(&working, scan).await;
        assert_ne!(status(&answer), "error", "{answer}");
    }

    // Then the published index lists exactly attempt 2's images
    let published = record(&env, TAG).await;
    assert_eq!(
        (published.phase(), published.attempt),
        (Phase::Published, 2)
    );
    let candidate = published.candidate.clone().expect("an index");
    assert_eq!(resolve(&env, TAG).await, Some(candidate.digest.to_string()));
    let (_, body) = manifest(&env, &candidate.digest)
        .await
        .expect("the index is in the registry");
    let index: Value = serde_json::from_slice(&body).unwrap();
    let listed: BTreeSet<String> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["digest"].as_str().unwrap().to_owned())
        .collect();
    let expected: BTreeSet<String> = own.values().map(Digest::to_string).collect();
    assert_eq!(listed, expected);
    assert!(!listed.contains(attempt_1_arm64.as_str()));
    assert_eq!(published.history.len(), 1);
    assert_eq!(published.history[0].outcome, Phase::Failed);
}

/// CodeBuild refusing every StartBuild before it is sent (the account's build limit, a
/// throttle that outlasts the SDK's retries); when `dies`, the invocation's process dies
/// there: none of its later calls (the ledger write that gives its claims back) happen.
#[derive(Clone, Debug, Default)]
struct Outage {
    refused: Arc<AtomicUsize>,
    dies: bool,
    dead: Arc<AtomicBool>,
}

impl Outage {
    fn refusing_start_build() -> Self {
        Outage::default()
    }

    fn dying_there(self) -> Self {
        Outage { dies: true, ..self }
    }
}

impl Intercept for Outage {
    fn name(&self) -> &'static str {
        "outage"
    }
    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if self.dead.load(Ordering::SeqCst) {
            return Err("the process is gone".into());
        }
        let operation = cfg
            .load::<Metadata>()
            .map(|m| format!("{}.{}", m.service(), m.name()))
            .unwrap_or_default();
        if operation == "CodeBuild.StartBuild" {
            self.refused.fetch_add(1, Ordering::SeqCst);
            if self.dies {
                self.dead.store(true, Ordering::SeqCst);
            }
            return Err(
                "AccountLimitExceededException: the concurrent build limit is reached".into(),
            );
        }
        Ok(())
    }
}

type PipelineOn<C> = AwsPipeline<C>;

/// The installation's pipeline on `clock`, its CodeBuild and DynamoDB clients in `outage`.
fn pipeline_in(env: &LocalEnv, outage: &Outage, clock: &Later) -> PipelineOn<Later> {
    let codebuild = aws_sdk_codebuild::Client::from_conf(
        aws_sdk_codebuild::config::Builder::from(&env.sdk)
            .interceptor(outage.clone())
            .build(),
    );
    let dynamodb = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&env.sdk)
            .interceptor(outage.clone())
            .build(),
    );
    Pipeline::new(
        env.config.clone(),
        Adapters {
            ledger: DynamoLedger::new(dynamodb, &env.config.ledger_table),
            builds: CodeBuildBuilds::new(codebuild),
            registry: EcrRegistry::new(env.clients.ecr.clone()),
            events: EventBridgePublisher::new(
                env.clients.eventbridge.clone(),
                &env.config.event_bus,
            ),
            clock: clock.clone(),
            signer: KmsSigner::new(env.clients.kms.clone(), env.config.signing_key.clone()),
        },
    )
}

// ---------------------------------------------------------------------------------------
// Rule 12: every release comes to rest.

/// A clock the test moves: the pipeline and the reconciler's `now` advance together, as on
/// AWS, so every retry stamps the record with the time it happened.
#[derive(Clone, Debug, Default)]
struct Later(Arc<AtomicI64>);

impl Later {
    fn advance(&self, millis: Millis) {
        self.0.fetch_add(millis, Ordering::SeqCst);
    }
}

impl Clock for Later {
    fn now_millis(&self) -> i64 {
        SystemClock.now_millis() + self.0.load(Ordering::SeqCst)
    }
}

// Before the fix the reconciler looked at the deadline of stale releases only; a pass every
// 10 minutes retried the assembly, the failed retry refreshed the record, and the release was
// never 15 minutes stale: it stayed assembling forever, without a word.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_whose_assembly_keeps_failing_ends_failed_at_its_deadline() {
    // Given a release whose two builds succeeded, but whose arm64 image someone deleted by
    // hand before the completions arrived: every assembly of its index fails
    let env = installation_in(ManifestMode::Native, OTHER_REGION).await;
    let clock = Later::default();
    let pipeline = env.clients.pipeline_at(&env.config, clock.clone());
    let answer = dispatch(&pipeline, upload(&env, KEY).await).await;
    assert_eq!(status(&answer), "applied", "{answer}");
    let mut completions = Vec::new();
    let mut pushed = BTreeMap::new();
    for arch in Arch::ALL {
        let (event, image) = env
            .finish_arch_build(TAG, arch, "SUCCEEDED", ImageShape::Manifest)
            .await
            .unwrap();
        completions.push(event);
        pushed.insert(arch, image.unwrap().digest);
    }
    let missing = pushed[&Arch::Arm64].clone();
    let deleted = env
        .clients
        .ecr
        .batch_delete_image()
        .repository_name(&env.config.repository)
        .image_ids(
            aws_sdk_ecr::types::ImageIdentifier::builder()
                .image_digest(missing.as_str())
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert!(deleted.failures().is_empty(), "{deleted:?}");
    let mut answers = Vec::new();
    for event in completions {
        answers.push(dispatch(&pipeline, event).await);
    }
    let last = answers.last().unwrap();
    assert_eq!(status(last), "error", "{answers:?}");
    assert_eq!(last["error_type"], "Archgate.ImageMissing", "{last}");
    let first = record(&env, TAG).await;
    assert_eq!(first.phase(), Phase::Assembling);
    let started = first.started_at();
    let mut tries = first.troubles[0].tries;
    drain(&env).await;

    // When the reconciler runs every 10 minutes for 7 hours
    let mut failed_after = None;
    for pass in 1..=42 {
        clock.advance(10 * MINUTE);
        let now = clock.now_millis();
        reconcile(&pipeline, POLICY, now).await.expect("a pass");
        let stored = env.release(TAG).await.unwrap().unwrap();
        let release = &stored.release;
        if release.phase() == Phase::Failed {
            failed_after.get_or_insert(now - started);
            continue;
        }

        // Then before its deadline it stays assembling, each retry on record: the retry
        // refreshed the record, so it is never stale
        assert!(now - started <= POLICY.deadline_ms, "pass {pass}");
        assert_eq!(release.phase(), Phase::Assembling, "pass {pass}");
        let trouble = release
            .troubles
            .iter()
            .find(|t| t.effect == Effect::AssembleCandidate)
            .unwrap_or_else(|| panic!("pass {pass}: {:?}", release.troubles));
        assert_eq!(trouble.error_type, "Archgate.ImageMissing");
        assert!(trouble.error.contains(missing.as_str()), "{trouble:?}");
        assert!(trouble.tries > tries, "pass {pass}: {trouble:?}");
        tries = trouble.tries;
        assert!(
            now - release.updated_at < POLICY.stale_after_ms,
            "pass {pass}: the retry refreshed the record"
        );
        // and `release status` says what keeps failing
        if pass == 18 {
            let lines = archgate_cli::status::status_lines(release, stored.version, &[]);
            let failing = lines
                .iter()
                .find(|l| l.starts_with("failing  assemble candidate index: "))
                .unwrap_or_else(|| panic!("{lines:#?}"));
            assert!(
                failing.contains(&format!("{tries} tries since"))
                    && failing.contains("Archgate.ImageMissing")
                    && failing.contains(missing.as_str()),
                "{failing}"
            );
        }
    }

    // Then it ended Failed at the first pass past its deadline
    let failed_after = failed_after.expect("the release failed");
    assert!(
        failed_after > POLICY.deadline_ms && failed_after <= POLICY.deadline_ms + 10 * MINUTE,
        "failed {} minutes after it started",
        failed_after / MINUTE
    );
    // with the reason: its index was never assembled, and the image it misses
    let failed = record(&env, TAG).await;
    let reason = failed.failure_reason().unwrap();
    assert!(
        reason.contains("its image index was never assembled")
            && reason.contains("assemble candidate index kept failing")
            && reason.contains(missing.as_str()),
        "{reason}"
    );
    // And exactly one Release Failed carries the reason and the last error
    let events = drain(&env).await;
    let announced = of_type(&events, "Release Failed", TAG);
    assert_eq!(announced.len(), 1, "{events:#?}");
    let detail = announced[0];
    assert_eq!(detail["reason"], json!(reason));
    let last_error = &detail["last-error"];
    assert_eq!(last_error["effect"], "assemble candidate index", "{detail}");
    assert_eq!(
        last_error["error-type"], "Archgate.ImageMissing",
        "{detail}"
    );
    assert!(
        last_error["error"]
            .as_str()
            .is_some_and(|e| e.contains(missing.as_str())),
        "{detail}"
    );
    assert!(last_error["tries"].as_u64().unwrap() > 30, "{detail}");
    assert!(last_error["since"].is_string(), "{detail}");
}

/// The ways a signing key cannot sign releases, what archgate says about each, and how an
/// operator fixes it.
#[derive(Clone, Copy, Debug)]
enum UnusableKey {
    /// The configuration names a key (an alias) KMS does not have.
    Missing,
    Rsa,
    Symmetric,
    /// ECDSA, but on secp256k1: `release verify` and in-toto tooling check P-256.
    Secp256k1,
    Disabled,
    PendingDeletion,
}

impl UnusableKey {
    const ALL: [UnusableKey; 6] = [
        UnusableKey::Missing,
        UnusableKey::Rsa,
        UnusableKey::Symmetric,
        UnusableKey::Secp256k1,
        UnusableKey::Disabled,
        UnusableKey::PendingDeletion,
    ];

    /// What the error says about the key.
    fn says(self) -> &'static str {
        match self {
            UnusableKey::Missing => "KMS has no such key",
            UnusableKey::Rsa => "RSA_2048",
            UnusableKey::Symmetric => "SYMMETRIC_DEFAULT",
            UnusableKey::Secp256k1 => "ECC_SECG_P256K1",
            UnusableKey::Disabled => "Disabled",
            UnusableKey::PendingDeletion => "pending deletion",
        }
    }

    /// Points `alias` at a key of this kind (or at nothing); returns the key.
    async fn make(self, env: &LocalEnv, alias: &str) -> Option<String> {
        let key = match self {
            UnusableKey::Missing => return None,
            UnusableKey::Rsa => new_key(env, KeySpec::Rsa2048, KeyUsageType::SignVerify).await,
            UnusableKey::Symmetric => {
                new_key(env, KeySpec::SymmetricDefault, KeyUsageType::EncryptDecrypt).await
            }
            UnusableKey::Secp256k1 => {
                new_key(env, KeySpec::EccSecgP256K1, KeyUsageType::SignVerify).await
            }
            UnusableKey::Disabled => {
                let key = new_key(env, KeySpec::EccNistP256, KeyUsageType::SignVerify).await;
                env.clients
                    .kms
                    .disable_key()
                    .key_id(&key)
                    .send()
                    .await
                    .unwrap();
                key
            }
            UnusableKey::PendingDeletion => {
                let key = new_key(env, KeySpec::EccNistP256, KeyUsageType::SignVerify).await;
                env.clients
                    .kms
                    .schedule_key_deletion()
                    .key_id(&key)
                    .pending_window_in_days(7)
                    .send()
                    .await
                    .unwrap();
                key
            }
        };
        point_alias(env, alias, &key).await;
        Some(key)
    }

    /// What an operator does: a P-256 key behind the alias, or the key enabled again.
    async fn fix(self, env: &LocalEnv, alias: &str, key: Option<&str>) {
        let kms = &env.clients.kms;
        match (self, key) {
            (UnusableKey::Disabled, Some(key)) => {
                kms.enable_key().key_id(key).send().await.unwrap();
            }
            (UnusableKey::PendingDeletion, Some(key)) => {
                kms.cancel_key_deletion().key_id(key).send().await.unwrap();
                kms.enable_key().key_id(key).send().await.unwrap();
            }
            _ => {
                let good = new_key(env, KeySpec::EccNistP256, KeyUsageType::SignVerify).await;
                point_alias(env, alias, &good).await;
            }
        }
    }
}

async fn new_key(env: &LocalEnv, spec: KeySpec, usage: KeyUsageType) -> String {
    env.clients
        .kms
        .create_key()
        .key_spec(spec)
        .key_usage(usage)
        .description("archgate test key")
        .send()
        .await
        .expect("CreateKey")
        .key_metadata()
        .expect("key metadata")
        .key_id()
        .to_owned()
}

/// Creates `alias` for `key`, or moves it there.
async fn point_alias(env: &LocalEnv, alias: &str, key: &str) {
    let kms = &env.clients.kms;
    let moved = kms
        .update_alias()
        .alias_name(alias)
        .target_key_id(key)
        .send()
        .await;
    if moved.is_err() {
        kms.create_alias()
            .alias_name(alias)
            .target_key_id(key)
            .send()
            .await
            .expect("CreateAlias");
    }
}

// Before the fix archgate signed with whatever KMS would sign with: the emulator (like a key
// that is only disabled in a cache) signs with a disabled or pending-deletion key, and the
// release was published with signatures nobody can check; the other kinds failed Sign with a
// generic error, and the deadline then failed the release, or nothing said why it waited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signing_key_that_cannot_sign_leaves_no_release_silent() {
    let env = installation_in(ManifestMode::Native, REGION).await;
    for (n, unusable) in UnusableKey::ALL.into_iter().enumerate() {
        // Given the signing key is one that cannot sign releases
        let alias = format!("alias/archgate-case-{n}");
        let config = config_with(ManifestMode::Native, &[(SIGNING_KEY, alias.as_str())]);
        let pipeline = env.clients.pipeline(&config);
        let key = unusable.make(&env, &alias).await;
        let tag = format!("myapp-key-{n}");
        candidate_ready(&env, &tag).await;
        drain(&env).await;

        // When both per-arch images pass the gate
        let mut answers = Vec::new();
        for arch in Arch::ALL {
            let scan = env
                .scan_arch_image(&tag, arch, "COMPLETE", &[])
                .await
                .unwrap();
            answers.push(dispatch(&pipeline, scan).await);
        }

        // Then the invocation fails with why the key cannot sign, and nothing is published
        let answer = answers.last().unwrap();
        assert_eq!(status(answer), "error", "{unusable:?}: {answer}");
        assert_eq!(
            answer["error_type"], "Archgate.SigningKeyUnusable",
            "{unusable:?}: {answer}"
        );
        let message = answer["error_message"].as_str().unwrap_or_default();
        assert!(
            message.contains(unusable.says()) && message.contains(&alias),
            "{unusable:?}: {message}"
        );
        let waiting = record(&env, &tag).await;
        assert_eq!(waiting.phase(), Phase::CandidateReady, "{unusable:?}");
        assert!(waiting.published.is_none() && waiting.attestations.is_empty());
        assert_eq!(resolve(&env, &tag).await, None, "{unusable:?}");
        let trouble = waiting
            .troubles
            .iter()
            .find(|t| t.effect == Effect::Attest)
            .unwrap_or_else(|| panic!("{unusable:?}: {:?}", waiting.troubles));
        assert_eq!(trouble.error_type, "Archgate.SigningKeyUnusable");
        assert!(trouble.error.contains(unusable.says()), "{trouble:?}");

        // When the reconciler runs past the deadline, and once more
        let late = SystemClock.now_millis() + 7 * HOUR;
        reconcile(&pipeline, POLICY, late).await.expect("a pass");
        reconcile(&pipeline, POLICY, late + 20 * MINUTE)
            .await
            .expect("a pass");

        // Then the release is not failed: it is stalled, and announced once, with the
        // reason and the last error
        let stalled = record(&env, &tag).await;
        assert_eq!(stalled.phase(), Phase::CandidateReady, "{unusable:?}");
        assert!(stalled.abandoned.is_none(), "{unusable:?}");
        let stall = stalled.stalled.clone().expect("stalled");
        assert!(stall.reason.contains("passed its gate"), "{stall:?}");
        let events = drain(&env).await;
        assert!(of_type(&events, "Release Failed", &tag).is_empty());
        let announced = of_type(&events, "Release Stalled", &tag);
        assert_eq!(announced.len(), 1, "{unusable:?}: {events:#?}");
        let detail = announced[0];
        assert_eq!(detail["reason"], json!(stall.reason), "{detail}");
        assert_eq!(detail["state"], "candidate_ready", "{detail}");
        let last_error = &detail["last-error"];
        assert_eq!(last_error["effect"], "sign the provenance and the verdict");
        assert_eq!(last_error["error-type"], "Archgate.SigningKeyUnusable");
        assert!(
            last_error["error"]
                .as_str()
                .is_some_and(|e| e.contains(unusable.says())),
            "{detail}"
        );
        assert!(last_error["tries"].as_u64().unwrap() >= 2, "{detail}");

        // When the operator fixes the key and the reconciler runs again
        unusable.fix(&env, &alias, key.as_deref()).await;
        reconcile(&pipeline, POLICY, late + 30 * MINUTE)
            .await
            .expect("a pass");

        // Then the release is published, its attestations signed by the key behind the alias
        let published = record(&env, &tag).await;
        assert_eq!(published.phase(), Phase::Published, "{unusable:?}");
        assert!(published.troubles.is_empty(), "{:?}", published.troubles);
        let events = drain(&env).await;
        assert_eq!(of_type(&events, "Release Published", &tag).len(), 1);
        assert!(of_type(&events, "Release Stalled", &tag).is_empty());
        let der = archgate::aws::public_key(&env.clients.kms, &alias)
            .await
            .unwrap();
        let verifying = archgate_cli::verify::Key::from_der(&der, Some(alias.clone())).unwrap();
        let verified = archgate_cli::verify::verify(
            &EcrRegistry::new(env.clients.ecr.clone()),
            &env.config.repository,
            &tag,
            Some(&verifying),
        )
        .await
        .unwrap_or_else(|e| panic!("{unusable:?}: {e}"));
        assert_eq!(verified.attestations.len(), 2);
        assert!(verified
            .attestations
            .iter()
            .all(|a| a.signed_by.as_deref() == Some(alias.as_str())));
    }
}

// ---------------------------------------------------------------------------------------
// Rule 3: reserved names.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_named_like_a_signature_tag_of_another_releases_index_is_refused() {
    // Given a published release
    let env = installation_in(ManifestMode::Native, REGION).await;
    let published = publish(&env, TAG).await;
    let index = published.candidate.clone().unwrap().digest;
    drain(&env).await;
    calls(&env);

    for suffix in [".sig", ".att", ".sbom", ""] {
        // When a build context is uploaded under the name cosign gives its index's signature
        // (or attestation, or SBOM, or the OCI referrers fallback tag)
        let name = format!("sha256-{}{suffix}", index.hex());
        let key = format!("releases/{name}.zip");
        let answer = env.start_builds(upload(&env, &key).await).await;

        // Then it is refused with a Release Rejected saying why, and nothing is built
        assert_eq!(status(&answer), "applied", "{answer}");
        let tally = calls(&env);
        assert_eq!(
            count(&tally, "CodeBuild.StartBuild"),
            0,
            "{name}: {tally:?}"
        );
        let events = drain(&env).await;
        let rejected = of_type(&events, "Release Rejected", &name);
        assert_eq!(rejected.len(), 1, "{name}: {events:#?}");
        assert_eq!(rejected[0]["rule"], "referrer-tag", "{}", rejected[0]);
        assert_eq!(rejected[0]["source"]["key"], json!(key));
        assert_eq!(rejected[0]["attempt"], 0);
        assert!(
            rejected[0]["reason"]
                .as_str()
                .is_some_and(|r| r.contains("signature")),
            "{}",
            rejected[0]
        );
        assert_eq!(events.len(), 1, "nothing else is announced: {events:#?}");
        // and its record is a rejected name's, with no build
        let refused = record(&env, &name).await;
        assert_eq!(refused.phase(), Phase::Rejected, "{name}");
        assert!(refused.amd64.build_id.is_none() && refused.arm64.build_id.is_none());
        assert!(refused.pending.is_empty(), "{:?}", refused.pending);
        assert_eq!(resolve(&env, &name).await, None);
    }

    // And the published release is untouched
    assert_eq!(record(&env, TAG).await, published);
    assert_eq!(resolve(&env, TAG).await, Some(index.to_string()));
}

// ---------------------------------------------------------------------------------------
// Retention and the attempts it frees.

/// The event bus retention announces on, with a twist: just before a release's `Release
/// Expired` goes out, the new upload of that release's key reaches start-builds (the upload
/// right as retention expires the attempt it builds again).
#[derive(Clone)]
struct UploadWhileAnnouncing {
    inner: EventBridgePublisher,
    pipeline: PipelineOn<ShiftedClock>,
    uploads: Arc<Mutex<BTreeMap<String, Value>>>,
    answers: Arc<Mutex<Vec<Value>>>,
}

/// The AWS adapters "days later", retention's announcements through [`UploadWhileAnnouncing`].
struct AnnouncingWhileUploading;

impl Ports for AnnouncingWhileUploading {
    type Ledger = DynamoLedger;
    type Builds = CodeBuildBuilds;
    type Registry = EcrRegistry;
    type Events = UploadWhileAnnouncing;
    type Clock = ShiftedClock;
    type Signer = KmsSigner;
    type Inventory = EcrRegistry;
    type Workloads = AwsWorkloads;
}

impl EventPublisher for UploadWhileAnnouncing {
    async fn publish(&self, event: &ReleaseEvent) -> Result<(), AdapterError> {
        if event.detail_type() == EventKind::Expired.detail_type() {
            let upload = self.uploads.lock().unwrap().remove(&event.detail.tag);
            if let Some(upload) = upload {
                let answer = dispatch(&self.pipeline, upload).await;
                self.answers.lock().unwrap().push(answer);
            }
        }
        self.inner.publish(event).await
    }

    async fn publish_detail(&self, detail_type: &str, detail: String) -> Result<(), AdapterError> {
        self.inner.publish_detail(detail_type, detail).await
    }
}

// Before the fix, retention recorded its announcement with the effects the decision claimed:
// the queued attempt's two StartBuilds, claimed by a function that cannot start builds. The
// next start-builds delivery saw fresh claims and answered "duplicate upload", the reconciler
// saw nothing unclaimed: the builds waited for the claim lease, with nobody holding them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_frees_a_queued_attempt_without_holding_its_builds() {
    // Given two failed attempts, and a new version of each one's file uploaded
    let env = installation_in(ManifestMode::Native, REGION).await;
    let (redelivered, reconciled) = ("myapp-2.0-alpha", "myapp-2.0-beta");
    let mut uploads = BTreeMap::new();
    for tag in [redelivered, reconciled] {
        releases::fail(&env, tag).await;
        uploads.insert(
            tag.to_owned(),
            upload(&env, &format!("releases/{tag}.zip")).await,
        );
    }
    let events = uploads.clone();
    drain(&env).await;

    // When retention runs 31 days later, expiring attempts older than 30 days, and each new
    // upload reaches start-builds right as its release's expiry is announced
    let later = ShiftedClock {
        offset_ms: 31 * DAY,
    };
    let pipeline = env.clients.pipeline_at(&env.config, later);
    let config = env.retention_config(&[
        (RETENTION_ATTEMPT_DAYS, "30"),
        (RETENTION_MAX_DELETE_SHARE, "1"),
    ]);
    let base = env.clients.retention_at(config, later);
    let publisher = UploadWhileAnnouncing {
        inner: base.events,
        pipeline: pipeline.clone(),
        uploads: Arc::new(Mutex::new(uploads)),
        answers: Arc::default(),
    };
    let retention: Retention<AnnouncingWhileUploading> = Retention {
        config: base.config,
        inventory: base.inventory,
        workloads: base.workloads,
        ledger: base.ledger,
        events: publisher,
        clock: base.clock,
    };
    let report = archgate::retention::run(&retention, Request::default()).await;
    let expired: BTreeSet<&str> = report.repositories[0]
        .releases_expired
        .iter()
        .map(|r| r.tag.as_str())
        .collect();
    assert_eq!(
        expired,
        BTreeSet::from([redelivered, reconciled]),
        "{report:?}"
    );
    let answers = retention.events.answers.lock().unwrap().clone();
    assert_eq!(answers.len(), 2, "{answers:?}");
    assert!(
        answers.iter().all(|a| status(a) == "applied"),
        "{answers:?}"
    );

    // Then each release started its next attempt, and no StartBuild is claimed: retention
    // cannot start builds and the upload's delivery came before the attempt existed
    for tag in [redelivered, reconciled] {
        let release = record(&env, tag).await;
        assert_eq!((release.attempt, release.phase()), (2, Phase::Building));
        assert_eq!(release.history.last().unwrap().outcome, Phase::Expired);
        assert!(release.amd64.build_id.is_none() && release.arm64.build_id.is_none());
        assert!(
            !release
                .pending
                .iter()
                .any(|c| matches!(c.effect, Effect::StartBuild(_))),
            "{tag}: {:?}",
            release.pending
        );
    }

    // When the upload event of one comes again (EventBridge redelivers, or S3 sends it twice)
    calls(&env);
    let answer = dispatch(&pipeline, events[redelivered].clone()).await;

    // Then both its builds start at once
    assert_eq!(status(&answer), "applied", "{answer}");
    assert_eq!(count(&calls(&env), "CodeBuild.StartBuild"), 2);
    let started = record(&env, redelivered).await;
    assert!(started.amd64.build_id.is_some() && started.arm64.build_id.is_some());

    // And the reconciler's next pass starts the other's at once
    let report = reconcile(&pipeline, POLICY, later.now_millis())
        .await
        .expect("a pass");
    assert!(report.failed.is_empty(), "{report:?}");
    assert_eq!(count(&calls(&env), "CodeBuild.StartBuild"), 2, "{report:?}");
    let started = record(&env, reconciled).await;
    assert!(started.amd64.build_id.is_some() && started.arm64.build_id.is_some());
    let events = drain(&env).await;
    for tag in [redelivered, reconciled] {
        assert_eq!(of_type(&events, "Release Started", tag).len(), 1, "{tag}");
    }
}

// Before the fix, scan-gate read the findings of the deleted image and failed with ECR's
// ImageNotFoundException: the invocation was retried twice and dead-lettered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_of_an_expired_releases_image_is_ignored_not_an_error() {
    // Given a published release expired by release-level retention, its images deleted
    let env = installation_in(ManifestMode::Native, OTHER_REGION).await;
    let old = "myapp-1.0";
    let expired = publish(&env, old).await;
    publish(&env, "myapp-1.1").await;
    let config = env.retention_config(&[
        (RETENTION_KEEP_RELEASES, "1"),
        (RETENTION_MAX_DELETE_SHARE, "1"),
    ]);
    archgate::retention::run(&env.clients.retention(config), Request::default()).await;
    let tombstone = record(&env, old).await;
    assert_eq!(tombstone.phase(), Phase::Expired);
    let children: BTreeMap<Arch, Digest> = expired
        .candidate
        .as_ref()
        .unwrap()
        .children
        .iter()
        .map(|c| (c.arch, c.digest.clone()))
        .collect();
    for digest in children.values() {
        assert!(manifest(&env, digest).await.is_none(), "{digest} is gone");
    }
    drain(&env).await;

    // When ECR's scan of its amd64 image and an Inspector finding on its arm64 image arrive
    let region = env.region();
    let account = archgate_testkit::emulator::ACCOUNT;
    let repository = env.config.repository.clone();
    let mut scan = sample("ecr-scan-findings.json");
    scan["region"] = json!(region);
    scan["time"] = json!("2026-12-03T10:00:00Z");
    scan["resources"] = json!([format!(
        "arn:aws:ecr:{region}:{account}:repository/{repository}"
    )]);
    scan["detail"]["repository-name"] = json!(repository);
    scan["detail"]["image-digest"] = json!(children[&Arch::Amd64].as_str());
    scan["detail"]["image-tags"] = json!([format!("{old}-amd64")]);
    let mut finding = sample("inspector2-finding.json");
    let arm64 = children[&Arch::Arm64].as_str();
    let image_arn = format!("arn:aws:ecr:{region}:{account}:repository/{repository}/{arm64}");
    finding["region"] = json!(region);
    finding["resources"] = json!([image_arn]);
    let resource = &mut finding["detail"]["resources"][0];
    resource["id"] = json!(image_arn);
    resource["region"] = json!(region);
    let image = &mut resource["details"]["awsEcrContainerImage"];
    image["imageHash"] = json!(arm64);
    image["imageTags"] = json!([format!("{old}-arm64")]);
    image["repositoryName"] = json!(repository);

    calls(&env);
    for event in [scan, finding] {
        let answer = env.scan_gate(event).await;

        // Then each is ignored with a typed reason, not an error
        assert_eq!(status(&answer), "ignored", "{answer}");
        assert!(
            ["release_expired", "image_gone"].contains(&answer["kind"].as_str().unwrap_or("")),
            "{answer}"
        );
    }
    // and no findings were read, nothing changed, nothing was announced
    let tally = calls(&env);
    assert!(
        tally
            .keys()
            .all(|op| op.starts_with("DynamoDB.") && !op.contains("Put") && !op.contains("Update")),
        "{tally:?}"
    );
    assert_eq!(record(&env, old).await, tombstone);
    assert!(drain(&env).await.is_empty());
}

// ---------------------------------------------------------------------------------------

/// Every release event published since the last call.
async fn drain(env: &LocalEnv) -> Vec<Value> {
    let mut events = Vec::new();
    loop {
        let batch = env.release_events().await.expect("release events");
        if batch.is_empty() {
            return events;
        }
        events.extend(batch);
    }
}

/// The details of the events of one kind about one release.
fn of_type<'e>(events: &'e [Value], kind: &str, tag: &str) -> Vec<&'e Value> {
    events
        .iter()
        .filter(|e| e["detail-type"] == kind && e["detail"]["tag"] == tag)
        .map(|e| &e["detail"])
        .collect()
}
