//! Crash safety: every handler is killed at each of its AWS calls in turn (the call fails as
//! a dying process would leave it) and the event is delivered again after the claim lease.
//! Every release still ends published, the ledger never claims an effect that did not
//! happen, and repeated effects are the same effect: one idempotency token per build, one
//! index digest, two attestation referrers per index, one event key per release event.

use archgate::aws::{CodeBuildBuilds, DynamoLedger, EcrRegistry, EventBridgePublisher, KmsSigner};
use archgate::domain::release::CLAIM_LEASE_MS;
use archgate::domain::{Arch, Phase};
use archgate::pipeline::{Adapters, Pipeline};
use archgate::ports::Clock;
use archgate::wiring::AwsPipeline;
use archgate_integration_tests::*;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Fails the n-th AWS call after it is armed, and records every call with its body.
#[derive(Clone, Debug, Default)]
struct Crash {
    fail_at: Arc<AtomicUsize>,
    seen: Arc<AtomicUsize>,
    calls: Arc<Mutex<Vec<(String, String)>>>,
}

impl Crash {
    fn arm(&self, at: usize) {
        self.seen.store(0, Ordering::SeqCst);
        self.fail_at.store(at, Ordering::SeqCst);
    }
}

impl Intercept for Crash {
    fn name(&self) -> &'static str {
        "crash"
    }
    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let n = self.seen.fetch_add(1, Ordering::SeqCst) + 1;
        if self.fail_at.load(Ordering::SeqCst) == n {
            return Err("the process died here".into());
        }
        let operation = cfg
            .load::<Metadata>()
            .map(|m| format!("{}.{}", m.service(), m.name()))
            .unwrap_or_default();
        let body = context
            .request()
            .body()
            .bytes()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default();
        self.calls.lock().unwrap().push((operation, body));
        Ok(())
    }
}

/// A clock that can be moved past the claim lease.
#[derive(Clone, Debug, Default)]
struct Later(Arc<AtomicI64>);

impl Clock for Later {
    fn now_millis(&self) -> i64 {
        archgate::ports::SystemClock.now_millis() + self.0.load(Ordering::SeqCst)
    }
}

type Crashing = AwsPipeline<Later>;

/// The pipeline on the emulator with `interceptor` on every client (and, when given, the
/// SDK retry policy).
fn pipeline_with<I>(
    env: &archgate_cli::local::LocalEnv,
    interceptor: &I,
    retry: Option<aws_sdk_dynamodb::config::retry::RetryConfig>,
    clock: &Later,
) -> Crashing
where
    I: Intercept + Clone + 'static,
{
    let sdk = &env.sdk;
    let mut dynamodb =
        aws_sdk_dynamodb::config::Builder::from(sdk).interceptor(interceptor.clone());
    let mut codebuild =
        aws_sdk_codebuild::config::Builder::from(sdk).interceptor(interceptor.clone());
    let mut ecr = aws_sdk_ecr::config::Builder::from(sdk).interceptor(interceptor.clone());
    let mut eventbridge =
        aws_sdk_eventbridge::config::Builder::from(sdk).interceptor(interceptor.clone());
    let mut kms = aws_sdk_kms::config::Builder::from(sdk).interceptor(interceptor.clone());
    if let Some(retry) = retry {
        dynamodb = dynamodb.retry_config(retry.clone());
        codebuild = codebuild.retry_config(retry.clone());
        ecr = ecr.retry_config(retry.clone());
        kms = kms.retry_config(retry.clone());
        eventbridge = eventbridge.retry_config(retry);
    }
    Pipeline::new(
        env.config.clone(),
        Adapters {
            ledger: DynamoLedger::new(
                aws_sdk_dynamodb::Client::from_conf(dynamodb.build()),
                &env.config.ledger_table,
            ),
            builds: CodeBuildBuilds::new(aws_sdk_codebuild::Client::from_conf(codebuild.build())),
            registry: EcrRegistry::new(aws_sdk_ecr::Client::from_conf(ecr.build())),
            events: EventBridgePublisher::new(
                aws_sdk_eventbridge::Client::from_conf(eventbridge.build()),
                &env.config.event_bus,
            ),
            clock: clock.clone(),
            signer: KmsSigner::new(
                aws_sdk_kms::Client::from_conf(kms.build()),
                env.config.signing_key.clone(),
            ),
        },
    )
}

#[derive(Clone, Copy, Debug)]
enum Step {
    Upload,
    Complete(Arch),
    Scan(Arch),
}

async fn event_for(env: &archgate_cli::local::LocalEnv, tag: &str, step: Step) -> Value {
    match step {
        Step::Upload => upload(env, &format!("releases/{tag}.zip")).await,
        Step::Complete(arch) => {
            env.finish_arch_build(tag, arch, "SUCCEEDED", ImageShape::Manifest)
                .await
                .unwrap()
                .0
        }
        Step::Scan(arch) => env
            .scan_arch_image(tag, arch, "COMPLETE", &[])
            .await
            .unwrap(),
    }
}

async fn deliver(pipeline: &Crashing, step: Step, event: Value) -> Result<Value, String> {
    let result = match step {
        Step::Upload => archgate_start_builds::handler::handle(pipeline, event).await,
        Step::Complete(_) => archgate_build_completed::handler::handle(pipeline, event).await,
        Step::Scan(_) => archgate_scan_gate::handler::handle(pipeline, event).await,
    };
    result
        .map(|o| serde_json::to_value(o).unwrap())
        .map_err(|e| e.chain())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_killed_at_any_call_converges_when_the_event_comes_again() {
    let env = installation(ManifestMode::Native).await;
    let (crash, clock) = (Crash::default(), Later::default());
    let pipeline = pipeline_with(&env, &crash, None, &clock);
    let steps = [
        (Step::Upload, 5),
        (Step::Complete(Arch::Amd64), 2),
        (Step::Complete(Arch::Arm64), 7),
        (Step::Scan(Arch::Amd64), 2),
        // (the promotion: its attestations signed and recorded, their blobs and referrers
        // pushed, then the tags)
        (Step::Scan(Arch::Arm64), 21),
    ];
    let mut releases = Vec::new();
    for (crashing_step, calls) in steps {
        for at in 1..=calls {
            let tag = format!("crash-{}-{at}", releases.len());
            for (step, _) in steps {
                let event = event_for(&env, &tag, step).await;
                let same_step = std::mem::discriminant(&step)
                    == std::mem::discriminant(&crashing_step)
                    && format!("{step:?}") == format!("{crashing_step:?}");
                if same_step {
                    // Given the handler dies at its `at`-th AWS call
                    crash.arm(at);
                    let died = deliver(&pipeline, step, event.clone()).await;
                    crash.arm(0);
                    assert!(
                        died.is_err(),
                        "{tag}: {step:?} should have died at call {at}: {died:?}"
                    );
                    // When the event comes again after the claim lease
                    clock.0.fetch_add(CLAIM_LEASE_MS + 1, Ordering::SeqCst);
                }
                let answer = deliver(&pipeline, step, event).await;
                assert!(answer.is_ok(), "{tag}: {step:?}: {answer:?}");
            }
            releases.push(tag);
        }
    }

    // Then every release is published and holds no claim
    for tag in &releases {
        let release = env.release(tag).await.unwrap().unwrap().release;
        assert_eq!(
            release.phase(),
            Phase::Published,
            "{tag}: {:?}",
            release.timeline
        );
        assert!(release.pending.is_empty(), "{tag}: {:?}", release.pending);
    }
    // And repeated effects were the same effect
    let calls = crash.calls.lock().unwrap().clone();
    assert_no_second_effect(&env, &calls, releases.len()).await;
}

/// A fault on one operation: what the client sees, and how often.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FaultKind {
    /// 400 ThrottlingException, the request never reached the service.
    Throttled,
    /// 500 from the service, the request never took effect.
    ServerError,
    /// The service did the work, but its answer was lost: the client sees a 500.
    AnswerLost,
    /// The connection failed before the request was sent.
    ConnectionDropped,
    /// 300 ms of latency.
    Slow,
}

#[derive(Clone, Debug, Default)]
struct Faults {
    plan: Arc<Mutex<Option<(String, FaultKind, usize)>>>,
    calls: Arc<Mutex<Vec<(String, String)>>>,
}

impl Faults {
    fn set(&self, operation: &str, kind: FaultKind, times: usize) {
        *self.plan.lock().unwrap() = Some((operation.to_owned(), kind, times));
    }
    fn clear(&self) {
        *self.plan.lock().unwrap() = None;
    }
    /// Whether this call of `operation` is to fail with `kind`; counts it down.
    fn hit(&self, operation: &str, kinds: &[FaultKind]) -> Option<FaultKind> {
        let mut plan = self.plan.lock().unwrap();
        match plan.as_mut() {
            Some((op, kind, times)) if op == operation && *times > 0 && kinds.contains(kind) => {
                *times -= 1;
                Some(*kind)
            }
            _ => None,
        }
    }
}

fn operation_of(cfg: &ConfigBag) -> String {
    cfg.load::<Metadata>()
        .map(|m| format!("{}.{}", m.service(), m.name()))
        .unwrap_or_default()
}

impl Intercept for Faults {
    fn name(&self) -> &'static str {
        "faults"
    }
    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = operation_of(cfg);
        match self.hit(&operation, &[FaultKind::ConnectionDropped, FaultKind::Slow]) {
            Some(FaultKind::ConnectionDropped) => return Err("connection reset by peer".into()),
            Some(_) => std::thread::sleep(std::time::Duration::from_millis(300)),
            None => {}
        }
        let body = context
            .request()
            .body()
            .bytes()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default();
        self.calls.lock().unwrap().push((operation, body));
        Ok(())
    }
    fn modify_before_deserialization(
        &self,
        context: &mut aws_smithy_runtime_api::client::interceptors::context::BeforeDeserializationInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = operation_of(cfg);
        let Some(kind) = self.hit(
            &operation,
            &[
                FaultKind::Throttled,
                FaultKind::ServerError,
                FaultKind::AnswerLost,
            ],
        ) else {
            return Ok(());
        };
        let (status, body) = match kind {
            FaultKind::Throttled => (
                400,
                r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#,
            ),
            _ => (
                500,
                r#"{"__type":"InternalServerError","message":"internal error"}"#,
            ),
        };
        // Throttled and ServerError stand for requests the service refused; the emulator has
        // already done the work, so those two are only sound for idempotent operations —
        // which is every operation archgate calls. AnswerLost is the same answer, on purpose.
        let response = context.response_mut();
        *response.status_mut() =
            aws_smithy_runtime_api::http::StatusCode::try_from(status).unwrap();
        *response.body_mut() = aws_smithy_types::body::SdkBody::from(body);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_every_fault_each_release_converges_with_no_duplicate_effect() {
    let env = installation(ManifestMode::Native).await;
    let (faults, clock) = (Faults::default(), Later::default());
    // Fast SDK retries so the table runs in seconds; the policy is the SDK's standard one.
    let retry = aws_sdk_dynamodb::config::retry::RetryConfig::standard()
        .with_max_attempts(3)
        .with_initial_backoff(std::time::Duration::from_millis(10));
    let pipeline = pipeline_with(&env, &faults, Some(retry), &clock);
    let operations = [
        "DynamoDB.GetItem",
        "DynamoDB.PutItem",
        "DynamoDB.UpdateItem",
        "CodeBuild.StartBuild",
        "ECR.BatchGetImage",
        "ECR.PutImage",
        "ECR.CompleteLayerUpload",
        "KMS.Sign",
        "EventBridge.PutEvents",
    ];
    let kinds = [
        (FaultKind::Throttled, 1),
        (FaultKind::ServerError, 1),
        (FaultKind::AnswerLost, 1),
        (FaultKind::ConnectionDropped, 1),
        (FaultKind::Slow, 2),
        // Outlasts the SDK's three attempts: the invocation fails and the event comes again.
        (FaultKind::ServerError, 4),
    ];
    let steps = [
        Step::Upload,
        Step::Complete(Arch::Amd64),
        Step::Complete(Arch::Arm64),
        Step::Scan(Arch::Amd64),
        Step::Scan(Arch::Arm64),
    ];
    let mut table = vec![
        "| operation | fault | times | invocations failed | outcome |".to_owned(),
        "|---|---|---|---|---|".to_owned(),
    ];
    let mut releases = Vec::new();
    for operation in operations {
        for (kind, times) in kinds {
            let tag = format!("fault-{}", releases.len());
            faults.set(operation, kind, times);
            let mut failed = 0;
            for step in steps {
                let event = event_for(&env, &tag, step).await;
                if deliver(&pipeline, step, event.clone()).await.is_err() {
                    // Lambda retries a failed invocation; past the claim lease it acts again.
                    failed += 1;
                    clock.0.fetch_add(CLAIM_LEASE_MS + 1, Ordering::SeqCst);
                    let again = deliver(&pipeline, step, event).await;
                    assert!(
                        again.is_ok(),
                        "{tag} {operation} {kind:?}: {step:?} failed twice: {again:?}"
                    );
                }
            }
            faults.clear();
            let release = env.release(&tag).await.unwrap().unwrap().release;
            assert_eq!(
                release.phase(),
                Phase::Published,
                "{tag} {operation} {kind:?}: {:?}",
                release.timeline
            );
            assert!(release.pending.is_empty(), "{tag}: {:?}", release.pending);
            table.push(format!(
                "| {operation} | {kind:?} | {times} | {failed} | published |"
            ));
            releases.push(tag);
        }
    }
    let calls = faults.calls.lock().unwrap().clone();
    assert_no_second_effect(&env, &calls, releases.len()).await;
    println!("{}", table.join("\n"));
}

/// Repeated effects must be the same effect: one idempotency token per build, one digest per
/// image tag (but `latest`, which moves), one event key per release and kind.
async fn assert_no_second_effect(
    env: &archgate_cli::local::LocalEnv,
    calls: &[(String, String)],
    releases: usize,
) {
    let mut tokens: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut digests: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut referrers: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (operation, body) in calls {
        let Ok(request) = serde_json::from_str::<Value>(body) else {
            continue;
        };
        if operation == "CodeBuild.StartBuild" {
            let tag = request["environmentVariablesOverride"]
                .as_array()
                .and_then(|vars| vars.iter().find(|v| v["name"] == "IMAGE_TAG"))
                .and_then(|v| v["value"].as_str())
                .expect("StartBuild names the image tag")
                .to_owned();
            let token = request["idempotencyToken"]
                .as_str()
                .expect("StartBuild carries a token");
            tokens.entry(tag).or_default().insert(token.to_owned());
        }
        if operation == "ECR.PutImage" && request.get("imageTag").is_none() {
            // A referrer: put by digest, no tag. Its subject must get the same two.
            let manifest: Value =
                serde_json::from_str(request["imageManifest"].as_str().unwrap_or("{}"))
                    .unwrap_or_default();
            let subject = manifest["subject"]["digest"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let digest = request["imageDigest"].as_str().unwrap_or_default();
            referrers
                .entry(subject)
                .or_default()
                .insert(digest.to_owned());
            continue;
        }
        if operation == "ECR.PutImage" {
            let tag = request["imageTag"].as_str().unwrap_or_default().to_owned();
            let digest = request["imageDigest"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            digests.entry(tag).or_default().insert(digest);
        }
    }
    assert_eq!(tokens.len(), 2 * releases, "every arch build was started");
    assert!(
        tokens.values().all(|t| t.len() == 1),
        "one idempotency token per build: {tokens:?}"
    );
    assert!(
        digests
            .iter()
            .filter(|(tag, _)| tag.as_str() != "latest")
            .all(|(_, d)| d.len() == 1),
        "one digest per tag: {digests:?}"
    );
    // One provenance and one verdict per published index, however often they were pushed
    assert_eq!(referrers.len(), releases, "every release was attested");
    assert!(
        referrers.values().all(|r| r.len() == 2),
        "two referrers per index: {referrers:?}"
    );
    let mut keys: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for event in env.release_events().await.unwrap() {
        let key = (
            event["detail"]["tag"].as_str().unwrap_or("?").to_owned(),
            event["detail-type"].as_str().unwrap_or("?").to_owned(),
        );
        let event_key = event["detail"]["event-key"]
            .as_str()
            .expect("every release event carries its key");
        keys.entry(key).or_default().insert(event_key.to_owned());
    }
    assert!(
        keys.values().all(|k| k.len() == 1),
        "one event key per release and kind: {keys:?}"
    );
}
