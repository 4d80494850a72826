//! Properties of the release state machine, [`archgate::domain::decide`].
//!
//! The tests drive `decide` through a small simulator that plays the executor of
//! `pipeline.rs` against an in-memory ledger: one delivery is one invocation that decides on
//! the stored release, stores the next one, performs the claimed effects with deterministic
//! fakes and feeds each result back as `Fact::Completed` until nothing is left to do.
//!
//! EventBridge delivers at least once and in no particular order, so the properties are
//! stated over every permutation and duplication of one release's deliveries. The only order
//! the outside world guarantees is causal: a build's state change follows the StartBuild
//! that created the build, and the scan of a per-arch image follows the push of that image,
//! which the arch's build does once it was started (the scan may overtake the build's own
//! state change). A delivery that is not possible yet goes back to the end of the queue; one
//! that can never become possible (the manifest build of a release that failed before it was
//! started) is dropped. An image whose build fails is never pushed, so it is never scanned.

use archgate::domain::gate::{Policy, ScanReport, ScanStatus, Severity, Verdict};
use archgate::domain::notice::{NoticeKind, RejectReason};
use archgate::domain::release::{
    Candidate, CandidateChild, EventKind, GateState, ScanRecord, CLAIM_LEASE_MS,
};
use archgate::domain::{
    decide, Arch, BuildOrigin, BuildRole, BuildStatus, Decision, Digest, Effect, EffectResult,
    Fact, IgnoreReason, ManifestMode, Millis, Phase, Release, ReleaseKey, ReleaseTag, SourceObject,
};
use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

const T0: Millis = 1_700_000_000_000;

/// Time between two deliveries: far below the claim lease, so no claim ever goes stale
/// unless a test says so.
const TICK: Millis = 1;

const ROLES: [BuildRole; 3] = [BuildRole::Amd64, BuildRole::Arm64, BuildRole::Manifest];

/// A release calls for well under a dozen effects in all; an invocation that performs more
/// than this is looping.
const MAX_EFFECTS_PER_INVOCATION: usize = 32;

// ---------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------

fn key() -> ReleaseKey {
    ReleaseKey::new("myapp", ReleaseTag::parse("myapp-1.4.2").unwrap())
}

fn source_version(version_id: &str) -> SourceObject {
    SourceObject {
        bucket: "archgate-sources".to_owned(),
        key: "releases/myapp-1.4.2.zip".to_owned(),
        version_id: Some(version_id.to_owned()),
        etag: Some(format!("\"etag-{version_id}\"")),
        size: Some(4096),
        uploaded_at: None,
        sequencer: None,
    }
}

fn source() -> SourceObject {
    source_version("v1")
}

fn upload(mode: ManifestMode) -> Fact {
    Fact::SourceUploaded {
        source: source(),
        manifest_mode: mode,
    }
}

fn build_id(role: BuildRole) -> String {
    format!("build-{role}")
}

/// A build's state change that does not say which attempt started it (as builds did before
/// they carried it): taken only by a release that recorded the build.
fn build_changed(role: BuildRole, status: BuildStatus) -> Fact {
    Fact::BuildChanged {
        role,
        build_id: build_id(role),
        status,
        image_digest: None,
        image_platform: None,
        builder_image: None,
        origin: None,
    }
}

/// A build's state change that names the attempt (and upload) that started it.
fn build_of_attempt(role: BuildRole, status: BuildStatus, attempt: u32, upload: &str) -> Fact {
    Fact::BuildChanged {
        role,
        build_id: format!("{}-{attempt}", build_id(role)),
        status,
        image_digest: None,
        image_platform: None,
        builder_image: None,
        origin: Some(BuildOrigin {
            attempt,
            upload: Some(upload.to_owned()),
        }),
    }
}

/// The digest of an arch's image, as the candidate index references it.
fn child_digest(arch: Arch) -> Digest {
    Digest::of(arch.as_str().as_bytes())
}

/// The digest of the candidate index itself.
fn index_digest() -> Digest {
    Digest::of(b"index")
}

/// The candidate index the fake registry publishes, whichever manifest mode produced it.
fn candidate() -> Candidate {
    Candidate {
        tag: key().tag.candidate_tag(),
        digest: index_digest(),
        children: Arch::ALL
            .iter()
            .map(|arch| CandidateChild {
                arch: *arch,
                digest: child_digest(*arch),
            })
            .collect(),
        manifest: None,
        media_type: None,
    }
}

/// The tags the fake registry reports for a promotion.
fn release_tags() -> Vec<String> {
    vec![key().tag.to_string()]
}

/// How the gate judges one image's scan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Judgement {
    Pass,
    Block,
}

impl Judgement {
    /// The verdict the default policy gives a scan with these findings: HIGH findings are
    /// allowed, any CRITICAL one blocks.
    fn verdict(self) -> Verdict {
        let counts = match self {
            Judgement::Pass => [(Severity::High, 3)],
            Judgement::Block => [(Severity::Critical, 1)],
        };
        let report = ScanReport {
            status: ScanStatus::Complete,
            counts: counts.into_iter().collect(),
            findings: None,
        };
        let verdict = Policy::default().evaluate(&report, time::macros::date!(2026 - 01 - 01));
        assert_eq!(verdict.passes(), self == Judgement::Pass, "{verdict:?}");
        verdict
    }
}

/// Mostly passing, so both images pass in about half the cases.
fn judgement() -> impl Strategy<Value = Judgement> {
    prop_oneof![3 => Just(Judgement::Pass), 1 => Just(Judgement::Block)]
}

/// When a scan of an image completed and when the gate judged it.
const FIRST_SCAN: Millis = 1;
const RESCAN: Millis = 2;

/// One scan-gate delivery: the gate's judgement of one scan of an arch's image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ScanEvent {
    arch: Arch,
    judgement: Judgement,
    scanned_at: Millis,
    evaluated_at: Millis,
}

impl ScanEvent {
    /// The first scan of the arch's image, judged as it arrives.
    fn first(arch: Arch, judgement: Judgement) -> Self {
        ScanEvent {
            arch,
            judgement,
            scanned_at: FIRST_SCAN,
            evaluated_at: FIRST_SCAN,
        }
    }

    fn record(self) -> ScanRecord {
        ScanRecord {
            arch: self.arch,
            digest: child_digest(self.arch),
            verdict: self.judgement.verdict(),
            scanned_at: self.scanned_at,
            evaluated_at: self.evaluated_at,
            scanner: None,
            policy_version: None,
        }
    }

    fn fact(self) -> Fact {
        Fact::ScanEvaluated(self.record())
    }
}

/// A scan of an arbitrary image, judged at `scanned_at`.
fn scan_of(arch: Arch, digest: Digest, judgement: Judgement, scanned_at: Millis) -> Fact {
    Fact::ScanEvaluated(ScanRecord {
        arch,
        digest,
        verdict: judgement.verdict(),
        scanned_at,
        evaluated_at: scanned_at,
        scanner: None,
        policy_version: None,
    })
}

/// The scan of the arch's image the candidate references.
fn scan(arch: Arch, judgement: Judgement, scanned_at: Millis) -> Fact {
    scan_of(arch, child_digest(arch), judgement, scanned_at)
}

/// The next release and the claimed effects of a decision that must apply.
fn applied(decision: Decision) -> (Release, Vec<Effect>) {
    match decision {
        Decision::Apply { next, effects } => (*next, effects),
        Decision::Ignore(reason) => panic!("expected the fact to apply, it was ignored: {reason}"),
    }
}

/// Why a decision that must be ignored was ignored.
fn ignored(decision: Decision) -> IgnoreReason {
    match decision {
        Decision::Ignore(reason) => reason,
        Decision::Apply { effects, .. } => {
            panic!("expected the fact to be ignored, it applied with effects {effects:?}")
        }
    }
}

// ---------------------------------------------------------------------------------------
// The simulator
// ---------------------------------------------------------------------------------------

/// A conditional write found the release at another version than the writer read.
#[derive(Debug, PartialEq, Eq)]
struct Conflict;

/// One release's ledger item, the fake outside world, and what was asked of it.
struct Simulation {
    key: ReleaseKey,
    stored: Option<Release>,
    version: u64,
    now: Millis,
    /// How often each effect was returned by `decide` (claimed) over the whole run.
    requested: BTreeMap<Effect, usize>,
    /// Builds whose StartBuild was performed: only they can report a state change.
    started: BTreeSet<BuildRole>,
}

impl Simulation {
    fn new() -> Self {
        Simulation {
            key: key(),
            stored: None,
            version: 0,
            now: T0,
            requested: BTreeMap::new(),
            started: BTreeSet::new(),
        }
    }

    fn release(&self) -> &Release {
        self.stored.as_ref().expect("the release is in the ledger")
    }

    fn tick(&mut self) -> Millis {
        self.now += TICK;
        self.now
    }

    fn read(&self) -> (Option<Release>, u64) {
        (self.stored.clone(), self.version)
    }

    /// The ledger's conditional write: succeeds only on the version the writer read.
    fn write_if(&mut self, next: Release, expected: u64) -> Result<(), Conflict> {
        if self.version != expected {
            return Err(Conflict);
        }
        self.store(next);
        Ok(())
    }

    fn store(&mut self, next: Release) {
        self.stored = Some(next);
        self.version += 1;
    }

    /// One invocation handling one delivered fact, with nobody else touching the release.
    fn deliver(&mut self, fact: &Fact) -> Option<IgnoreReason> {
        let now = self.tick();
        match decide(self.stored.as_ref(), &self.key, fact, now) {
            Decision::Ignore(reason) => Some(reason),
            Decision::Apply { next, effects } => {
                self.store(*next);
                self.perform(effects);
                None
            }
        }
    }

    /// Performs claimed effects and records their results, as the executor does after its
    /// claim is written: each result is a fact that may call for further effects.
    fn perform(&mut self, effects: Vec<Effect>) {
        self.count(&effects);
        let mut todo: VecDeque<Effect> = effects.into();
        let mut performed = 0;
        while let Some(effect) = todo.pop_front() {
            performed += 1;
            assert!(
                performed <= MAX_EFFECTS_PER_INVOCATION,
                "effects keep being requested: {effect} again after {performed} effects"
            );
            let result = Fact::Completed(self.fake(effect));
            if let Decision::Apply { next, effects } =
                decide(self.stored.as_ref(), &self.key, &result, self.now)
            {
                self.store(*next);
                self.count(&effects);
                todo.extend(effects);
            }
        }
    }

    fn count(&mut self, effects: &[Effect]) {
        for effect in effects {
            *self.requested.entry(*effect).or_default() += 1;
        }
    }

    fn requested(&self, effect: Effect) -> usize {
        self.requested.get(&effect).copied().unwrap_or(0)
    }

    /// The outside world: every call succeeds and answers the same way every time.
    fn fake(&mut self, effect: Effect) -> EffectResult {
        match effect {
            Effect::StartBuild(role) => {
                self.started.insert(role);
                EffectResult::BuildStarted {
                    role,
                    build_id: build_id(role),
                }
            }
            Effect::StopBuild(role) => EffectResult::BuildStopped { role },
            Effect::AssembleCandidate | Effect::ResolveCandidate => {
                EffectResult::CandidatePublished {
                    candidate: candidate(),
                }
            }
            Effect::Attest => EffectResult::Attested {
                attestations: attestations(),
            },
            Effect::Promote => {
                let release = self.release();
                assert_eq!(
                    (release.phase(), release.gate()),
                    (Phase::CandidateReady, GateState::Passed),
                    "promoting a candidate the gate has not passed: {:?}",
                    release.scans
                );
                EffectResult::Promoted {
                    tags: release_tags(),
                }
            }
            Effect::Emit(kind) => EffectResult::Emitted { kind },
            Effect::Announce(seq) => EffectResult::Announced { seq },
        }
    }
}

/// What a signing would record: one envelope of each kind.
fn attestations() -> Vec<archgate::domain::attestation::Attestation> {
    use archgate::domain::attestation::{Attestation, AttestationKind, Envelope};
    AttestationKind::ALL
        .into_iter()
        .map(|kind| Attestation {
            kind,
            envelope: String::from_utf8(Envelope::unsigned(kind.to_string().as_bytes()).to_bytes())
                .unwrap(),
        })
        .collect()
}

/// What one delivery carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Delivery {
    Upload(ManifestMode),
    Build(BuildRole, BuildStatus),
    Scan(ScanEvent),
}

impl Delivery {
    fn fact(self) -> Fact {
        match self {
            Delivery::Upload(mode) => upload(mode),
            Delivery::Build(role, status) => build_changed(role, status),
            Delivery::Scan(scan) => scan.fact(),
        }
    }

    fn possible(self, sim: &Simulation) -> bool {
        match self {
            Delivery::Upload(_) => true,
            Delivery::Build(role, _) => sim.started.contains(&role),
            // The image is pushed by its build, so it can be scanned once the build runs.
            Delivery::Scan(scan) => sim.started.contains(&BuildRole::arch(scan.arch)),
        }
    }
}

/// The recorded release with timestamps and the timeline left out: what two runs that saw
/// the same facts must agree on.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Outcome {
    phase: Phase,
    builds: Vec<(BuildRole, Option<String>, Option<BuildStatus>)>,
    candidate: Option<Candidate>,
    /// The recorded verdicts. A failed release keeps whichever scans happened to arrive
    /// before the failure, which depends on the order, so they are left out for it.
    scans: Option<Vec<ScanRecord>>,
    published: Option<Vec<String>>,
    emitted: BTreeSet<EventKind>,
    pending: Vec<Effect>,
}

impl Outcome {
    fn of(release: &Release) -> Self {
        let phase = release.phase();
        Outcome {
            phase,
            scans: (phase != Phase::Failed).then(|| release.scans.clone()),
            published: release.published.as_ref().map(|p| p.tags.clone()),
            builds: ROLES
                .iter()
                .map(|role| {
                    let build = release.build(*role);
                    (*role, build.build_id.clone(), build.status)
                })
                .collect(),
            candidate: release.candidate.clone(),
            emitted: release.emitted.iter().copied().collect(),
            pending: release.pending.iter().map(|claim| claim.effect).collect(),
        }
    }
}

/// A finished run over a queue of deliveries.
struct Run {
    sim: Simulation,
    /// Deliveries that could never happen, left in the queue at the end.
    dropped: Vec<Delivery>,
}

impl Run {
    fn outcome(&self) -> Outcome {
        Outcome::of(self.sim.release())
    }
}

/// Delivers the queue one invocation at a time, re-queuing deliveries whose build was not
/// started yet, and checks after each delivery what must hold between any two of them.
fn run(deliveries: Vec<Delivery>) -> Run {
    let mut sim = Simulation::new();
    let mut queue: VecDeque<Delivery> = deliveries.into();
    let mut waiting = 0;
    while let Some(delivery) = queue.pop_front() {
        if !delivery.possible(&sim) {
            queue.push_back(delivery);
            waiting += 1;
            // A whole pass without a possible delivery: nothing can change any more.
            if waiting >= queue.len() {
                break;
            }
            continue;
        }
        waiting = 0;
        let before = sim.stored.clone();
        sim.deliver(&delivery.fact());
        check_step(before.as_ref(), sim.release(), delivery);
    }
    Run {
        sim,
        dropped: queue.into(),
    }
}

/// What every completed invocation leaves behind, whatever it was handed.
fn check_step(before: Option<&Release>, after: &Release, delivery: Delivery) {
    assert!(
        after.pending.is_empty(),
        "after {delivery:?} claims are left that nobody will perform: {:?}",
        after.pending
    );
    let Some(before) = before else { return };
    if before.phase().is_final() {
        assert_eq!(
            after.phase(),
            before.phase(),
            "{delivery:?} moved a finished release"
        );
    }
    for kind in &before.emitted {
        assert!(
            after.emitted.contains(kind),
            "{delivery:?} forgot that {kind:?} was emitted"
        );
    }
    for role in ROLES {
        if let Some(status) = before.build(role).status.filter(|s| s.is_final()) {
            assert_eq!(
                after.build(role).status,
                Some(status),
                "{delivery:?} rewrote the final status of the {role} build"
            );
        }
    }
    if before.phase().is_final() {
        assert_eq!(
            after.scans, before.scans,
            "{delivery:?} changed the verdicts of a finished release"
        );
    }
    if before.published.is_some() {
        assert_eq!(
            after.published, before.published,
            "{delivery:?} changed a publication"
        );
    }
    if after.published.is_some() {
        assert_eq!(
            after.gate(),
            GateState::Passed,
            "after {delivery:?} a release is published whose gate has not passed"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Scenarios: how each build ends
// ---------------------------------------------------------------------------------------

/// How the gate judges each arch's image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Gate {
    amd64: Judgement,
    arm64: Judgement,
}

impl Gate {
    fn judgement(self, arch: Arch) -> Judgement {
        match arch {
            Arch::Amd64 => self.amd64,
            Arch::Arm64 => self.arm64,
        }
    }

    fn passes(self) -> bool {
        Arch::ALL
            .iter()
            .all(|arch| self.judgement(*arch) == Judgement::Pass)
    }
}

#[derive(Clone, Copy, Debug)]
struct Scenario {
    mode: ManifestMode,
    amd64: BuildStatus,
    arm64: BuildStatus,
    manifest: BuildStatus,
    /// How each pushed image's scan is judged; `None`: no scan ever arrives.
    gate: Option<Gate>,
}

impl Scenario {
    fn arch_succeeds(&self, arch: Arch) -> bool {
        let status = match arch {
            Arch::Amd64 => self.amd64,
            Arch::Arm64 => self.arm64,
        };
        status == BuildStatus::Succeeded
    }

    fn arches_succeed(&self) -> bool {
        Arch::ALL.iter().all(|arch| self.arch_succeeds(*arch))
    }

    /// The scans that happen: one per image that was pushed, i.e. per arch that succeeded.
    fn scans(&self) -> Vec<ScanEvent> {
        let Some(gate) = self.gate else {
            return Vec::new();
        };
        Arch::ALL
            .into_iter()
            .filter(|arch| self.arch_succeeds(*arch))
            .map(|arch| ScanEvent::first(arch, gate.judgement(arch)))
            .collect()
    }

    fn manifest_started(&self) -> bool {
        self.mode == ManifestMode::Codebuild && self.arches_succeed()
    }

    fn succeeds(&self) -> bool {
        self.arches_succeed()
            && (self.mode == ManifestMode::Native || self.manifest == BuildStatus::Succeeded)
    }

    /// Every delivery once, in the order the builds would report: the reference run.
    fn deliveries(&self) -> Vec<Delivery> {
        let mut deliveries = vec![
            Delivery::Upload(self.mode),
            Delivery::Build(BuildRole::Amd64, self.amd64),
            Delivery::Build(BuildRole::Arm64, self.arm64),
        ];
        if self.mode == ManifestMode::Codebuild {
            deliveries.push(Delivery::Build(BuildRole::Manifest, self.manifest));
        }
        deliveries.extend(self.scans().into_iter().map(Delivery::Scan));
        deliveries
    }

    /// Failed iff a build failed; otherwise what the gate made of the candidate.
    fn expected_phase(&self) -> Phase {
        match self.gate {
            _ if !self.succeeds() => Phase::Failed,
            None => Phase::CandidateReady,
            Some(gate) if gate.passes() => Phase::Published,
            Some(_) => Phase::Blocked,
        }
    }

    /// How the release must end, written down independently of `decide`.
    fn expected_outcome(&self) -> Outcome {
        let manifest = if self.manifest_started() {
            (
                BuildRole::Manifest,
                Some(build_id(BuildRole::Manifest)),
                Some(self.manifest),
            )
        } else {
            (BuildRole::Manifest, None, None)
        };
        let phase = self.expected_phase();
        let emitted = match phase {
            Phase::Failed => vec![EventKind::Started, EventKind::Failed],
            Phase::Published => vec![
                EventKind::Started,
                EventKind::CandidateReady,
                EventKind::Published,
            ],
            Phase::Blocked => vec![
                EventKind::Started,
                EventKind::CandidateReady,
                EventKind::Blocked,
            ],
            _ => vec![EventKind::Started, EventKind::CandidateReady],
        };
        Outcome {
            phase,
            builds: vec![
                (
                    BuildRole::Amd64,
                    Some(build_id(BuildRole::Amd64)),
                    Some(self.amd64),
                ),
                (
                    BuildRole::Arm64,
                    Some(build_id(BuildRole::Arm64)),
                    Some(self.arm64),
                ),
                manifest,
            ],
            candidate: self.succeeds().then(candidate),
            scans: (phase != Phase::Failed)
                .then(|| self.scans().into_iter().map(ScanEvent::record).collect()),
            published: (phase == Phase::Published).then(release_tags),
            emitted: emitted.into_iter().collect(),
            pending: Vec::new(),
        }
    }

    /// Every effect but StopBuild, with the number of times it must be requested. Whether a
    /// sibling still needs stopping depends on delivery order, so StopBuild is checked apart.
    fn expected_requests(&self) -> BTreeMap<Effect, usize> {
        let mut effects = vec![
            Effect::StartBuild(BuildRole::Amd64),
            Effect::StartBuild(BuildRole::Arm64),
            Effect::Emit(EventKind::Started),
        ];
        if self.arches_succeed() {
            match self.mode {
                ManifestMode::Native => effects.push(Effect::AssembleCandidate),
                ManifestMode::Codebuild => {
                    effects.push(Effect::StartBuild(BuildRole::Manifest));
                    if self.manifest == BuildStatus::Succeeded {
                        effects.push(Effect::ResolveCandidate);
                    }
                }
            }
        }
        match self.expected_phase() {
            Phase::Failed => effects.push(Effect::Emit(EventKind::Failed)),
            Phase::Published => effects.extend([
                Effect::Emit(EventKind::CandidateReady),
                Effect::Attest,
                Effect::Promote,
                Effect::Emit(EventKind::Published),
            ]),
            Phase::Blocked => effects.extend([
                Effect::Emit(EventKind::CandidateReady),
                Effect::Emit(EventKind::Blocked),
            ]),
            _ => effects.push(Effect::Emit(EventKind::CandidateReady)),
        }
        effects.into_iter().map(|effect| (effect, 1)).collect()
    }
}

fn final_status() -> impl Strategy<Value = BuildStatus> {
    final_status_succeeding(8)
}

/// A final status that is SUCCEEDED `weight` times as often as each failure.
fn final_status_succeeding(weight: u32) -> impl Strategy<Value = BuildStatus> {
    prop_oneof![
        weight => Just(BuildStatus::Succeeded),
        1 => Just(BuildStatus::Failed),
        1 => Just(BuildStatus::Fault),
        1 => Just(BuildStatus::Stopped),
        1 => Just(BuildStatus::TimedOut),
    ]
}

fn manifest_mode() -> impl Strategy<Value = ManifestMode> {
    prop_oneof![Just(ManifestMode::Native), Just(ManifestMode::Codebuild)]
}

fn builds() -> impl Strategy<Value = (ManifestMode, BuildStatus, BuildStatus, BuildStatus)> {
    (
        manifest_mode(),
        final_status(),
        final_status(),
        final_status(),
    )
}

/// Builds that mostly succeed, so the gate has a candidate to judge in most cases.
fn mostly_successful_builds(
) -> impl Strategy<Value = (ManifestMode, BuildStatus, BuildStatus, BuildStatus)> {
    let status = || final_status_succeeding(24);
    (manifest_mode(), status(), status(), status())
}

/// How the builds end, with no scan ever arriving.
fn scenario() -> impl Strategy<Value = Scenario> {
    builds().prop_map(|(mode, amd64, arm64, manifest)| Scenario {
        mode,
        amd64,
        arm64,
        manifest,
        gate: None,
    })
}

/// How the builds end and how the gate judges each pushed image.
fn gated_scenario() -> impl Strategy<Value = Scenario> {
    (mostly_successful_builds(), judgement(), judgement()).prop_map(
        |((mode, amd64, arm64, manifest), a, b)| Scenario {
            mode,
            amd64,
            arm64,
            manifest,
            gate: Some(Gate { amd64: a, arm64: b }),
        },
    )
}

/// Each delivery one to three times, all in any order.
fn duplicated_and_shuffled(canonical: Vec<Delivery>) -> impl Strategy<Value = Vec<Delivery>> {
    proptest::collection::vec(1..=3usize, canonical.len()).prop_flat_map(move |copies| {
        let deliveries: Vec<Delivery> = canonical
            .iter()
            .zip(copies)
            .flat_map(|(delivery, n)| std::iter::repeat_n(*delivery, n))
            .collect();
        Just(deliveries).prop_shuffle()
    })
}

/// A scenario and its deliveries, each delivered one to three times, in any order.
fn deliveries_of(
    scenarios: impl Strategy<Value = Scenario>,
) -> impl Strategy<Value = (Scenario, Vec<Delivery>)> {
    scenarios.prop_flat_map(|scenario| {
        (
            Just(scenario),
            duplicated_and_shuffled(scenario.deliveries()),
        )
    })
}

fn scenario_and_deliveries() -> impl Strategy<Value = (Scenario, Vec<Delivery>)> {
    deliveries_of(scenario())
}

fn gated_scenario_and_deliveries() -> impl Strategy<Value = (Scenario, Vec<Delivery>)> {
    deliveries_of(gated_scenario())
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        // A failure is reported with its shrunk input; nothing is written next to the tests.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------
// Properties over every order and duplication of one release's deliveries
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_order_and_duplication_ends_as_the_in_order_run(
        (scenario, deliveries) in scenario_and_deliveries()
    ) {
        // Given the reference run: every delivery once, in order.
        let reference = run(scenario.deliveries());

        // When the same deliveries arrive duplicated and reordered.
        let shuffled = run(deliveries);

        // Then the release ends in the same recorded state, with no claim left over.
        prop_assert_eq!(shuffled.outcome(), reference.outcome());
        prop_assert!(shuffled.outcome().pending.is_empty());
        // And only deliveries about a manifest build that was never started were dropped.
        for dropped in &shuffled.dropped {
            prop_assert!(
                matches!(dropped, Delivery::Build(BuildRole::Manifest, _))
                    && !scenario.manifest_started(),
                "{:?} was never deliverable", dropped
            );
        }
    }

    #[test]
    fn each_effect_is_requested_exactly_once(
        (scenario, deliveries) in scenario_and_deliveries()
    ) {
        // Given a release's deliveries, duplicated and reordered.
        // When they are all delivered.
        let run = run(deliveries);

        // Then every effect the release needs was claimed exactly once, and nothing else.
        let (stops, others): (BTreeMap<Effect, usize>, BTreeMap<Effect, usize>) = run
            .sim
            .requested
            .iter()
            .partition(|(effect, _)| matches!(effect, Effect::StopBuild(_)));
        prop_assert_eq!(others, scenario.expected_requests());
        // A build is stopped at most once, only because the release failed, and never the
        // manifest build: it only starts once both arches succeeded.
        for (effect, count) in stops {
            prop_assert_eq!(count, 1, "{} requested {} times", effect, count);
            prop_assert!(!scenario.succeeds(), "{} requested for a release that succeeded", effect);
            prop_assert_ne!(effect, Effect::StopBuild(BuildRole::Manifest));
        }
        prop_assert!(
            run.sim.requested(Effect::Emit(EventKind::Failed)) == 0
                || run.sim.requested(Effect::Emit(EventKind::CandidateReady)) == 0,
            "a release was announced both failed and ready"
        );
    }

    #[test]
    fn a_release_is_ready_only_when_every_build_succeeded(
        (scenario, deliveries) in scenario_and_deliveries()
    ) {
        // Given how each build ends.
        // When all deliveries were handled, in any order.
        let run = run(deliveries);

        // Then the release is CandidateReady iff both arches (and in codebuild mode the
        // manifest build) succeeded, and Failed otherwise, recorded as written down here.
        let expected = scenario.expected_outcome();
        prop_assert_eq!(
            run.outcome().phase,
            if scenario.succeeds() { Phase::CandidateReady } else { Phase::Failed }
        );
        prop_assert_eq!(run.outcome(), expected);
        prop_assert_eq!(run.sim.release().failure().is_none(), scenario.succeeds());
    }
}

// ---------------------------------------------------------------------------------------
// The scan gate: builds, candidate and scans in any order
// ---------------------------------------------------------------------------------------

/// An arch whose image is scanned twice (an older blocking scan, then a newer passing scan
/// or a re-evaluation of the same scan that passes), and how the sibling's scan is judged.
#[derive(Clone, Copy, Debug)]
struct Rescan {
    mode: ManifestMode,
    arch: Arch,
    /// The newer verdict is a re-evaluation of the first scan rather than a new scan.
    reevaluated: bool,
    sibling: Judgement,
}

impl Rescan {
    fn older(&self) -> ScanEvent {
        ScanEvent::first(self.arch, Judgement::Block)
    }

    fn newer(&self) -> ScanEvent {
        let (scanned_at, evaluated_at) = if self.reevaluated {
            (FIRST_SCAN, FIRST_SCAN + 1)
        } else {
            (RESCAN, RESCAN)
        };
        ScanEvent {
            arch: self.arch,
            judgement: Judgement::Pass,
            scanned_at,
            evaluated_at,
        }
    }

    /// Every delivery once, the older scan before the newer one.
    fn deliveries(&self) -> Vec<Delivery> {
        let mut deliveries = vec![
            Delivery::Upload(self.mode),
            Delivery::Build(BuildRole::Amd64, BuildStatus::Succeeded),
            Delivery::Build(BuildRole::Arm64, BuildStatus::Succeeded),
        ];
        if self.mode == ManifestMode::Codebuild {
            deliveries.push(Delivery::Build(BuildRole::Manifest, BuildStatus::Succeeded));
        }
        deliveries.extend([
            Delivery::Scan(self.older()),
            Delivery::Scan(self.newer()),
            Delivery::Scan(ScanEvent::first(self.arch.sibling(), self.sibling)),
        ]);
        deliveries
    }

    /// The newer verdict stands for the arch, so the sibling alone decides.
    fn expected_phase(&self) -> Phase {
        match self.sibling {
            Judgement::Pass => Phase::Published,
            Judgement::Block => Phase::Blocked,
        }
    }
}

fn rescan_and_deliveries() -> impl Strategy<Value = (Rescan, Vec<Delivery>)> {
    (
        manifest_mode(),
        prop_oneof![Just(Arch::Amd64), Just(Arch::Arm64)],
        any::<bool>(),
        judgement(),
    )
        .prop_flat_map(|(mode, arch, reevaluated, sibling)| {
            let rescan = Rescan {
                mode,
                arch,
                reevaluated,
                sibling,
            };
            (Just(rescan), duplicated_and_shuffled(rescan.deliveries()))
        })
}

/// The recorded verdict on each of the candidate's children.
fn child_verdicts(release: &Release) -> Vec<Option<ScanRecord>> {
    release
        .candidate
        .iter()
        .flat_map(|candidate| &candidate.children)
        .map(|child| release.verdict_for(child.arch, &child.digest).cloned())
        .collect()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_interleaving_of_builds_and_scans_ends_as_the_in_order_run(
        (scenario, deliveries) in gated_scenario_and_deliveries()
    ) {
        // Given the reference run: the builds in order, then each pushed image's scan once.
        let reference = run(scenario.deliveries());

        // When the same deliveries arrive duplicated, with the scans mixed in anywhere the
        // image already exists (before the candidate, before the build's own success).
        let shuffled = run(deliveries);

        // Then the release ends in the same phase with the same verdicts and publication.
        prop_assert_eq!(shuffled.outcome(), reference.outcome());
        prop_assert_eq!(
            child_verdicts(shuffled.sim.release()),
            child_verdicts(reference.sim.release())
        );
        // And that is Published iff every build succeeded and both scans pass, Blocked iff
        // every build succeeded and a scan blocks, Failed iff a build failed.
        prop_assert_eq!(shuffled.outcome(), scenario.expected_outcome());
        let phase = shuffled.outcome().phase;
        let gate = scenario.gate.expect("a gated scenario");
        prop_assert_eq!(phase == Phase::Published, scenario.succeeds() && gate.passes());
        prop_assert_eq!(phase == Phase::Blocked, scenario.succeeds() && !gate.passes());
        prop_assert_eq!(phase == Phase::Failed, !scenario.succeeds());
        // And a scan is always deliverable: its image was pushed by a build that was started.
        for dropped in &shuffled.dropped {
            prop_assert!(
                matches!(dropped, Delivery::Build(BuildRole::Manifest, _))
                    && !scenario.manifest_started(),
                "{:?} was never deliverable", dropped
            );
        }
    }

    #[test]
    fn a_gated_release_is_promoted_at_most_once(
        (scenario, deliveries) in gated_scenario_and_deliveries()
    ) {
        // Given a release's build and scan deliveries, duplicated and reordered.
        // When they are all delivered.
        let run = run(deliveries);
        let phase = run.sim.release().phase();

        // Then promotion was claimed exactly once if the release is published, never
        // otherwise, and every other effect the release needs exactly once.
        let published = usize::from(phase == Phase::Published);
        let blocked = usize::from(phase == Phase::Blocked);
        prop_assert_eq!(run.sim.requested(Effect::Promote), published);
        prop_assert_eq!(run.sim.requested(Effect::Emit(EventKind::Published)), published);
        prop_assert_eq!(run.sim.requested(Effect::Emit(EventKind::Blocked)), blocked);
        prop_assert!(
            run.sim.requested(Effect::Emit(EventKind::Published)) == 0
                || run.sim.requested(Effect::Emit(EventKind::Blocked)) == 0,
            "a release was announced both published and blocked"
        );
        let others: BTreeMap<Effect, usize> = run
            .sim
            .requested
            .iter()
            .filter(|(effect, _)| !matches!(effect, Effect::StopBuild(_)))
            .map(|(effect, count)| (*effect, *count))
            .collect();
        prop_assert_eq!(others, scenario.expected_requests());
        prop_assert_eq!(
            run.sim.release().published.as_ref().map(|p| p.tags.clone()),
            (phase == Phase::Published).then(release_tags)
        );
    }

    #[test]
    fn the_newest_scan_of_an_image_wins_in_any_order(
        (rescan, deliveries) in rescan_and_deliveries()
    ) {
        // Given an image whose first scan blocks and whose newer scan (or re-evaluation)
        // passes, each delivered one to three times, in any order with everything else.
        let reference = run(rescan.deliveries());

        // When all of it is delivered.
        let shuffled = run(deliveries);

        // Then the newer verdict stands for that image, so the sibling's verdict alone
        // decides: published if it passes, blocked otherwise.
        let release = shuffled.sim.release();
        prop_assert_eq!(release.phase(), rescan.expected_phase());
        prop_assert_eq!(
            release.verdict_for(rescan.arch, &child_digest(rescan.arch)),
            Some(&rescan.newer().record())
        );
        prop_assert_eq!(
            release.scans.clone(),
            reference.sim.release().scans.clone()
        );
        prop_assert_eq!(release.phase(), reference.sim.release().phase());
        prop_assert_eq!(
            Outcome::of(release).published,
            reference.outcome().published
        );

        // And it was promoted once if published and never otherwise. Whether it was blocked
        // on the way depends on whether the older scan was judged before the newer one, so
        // Blocked is announced at most once and always when the release ends blocked.
        let published = usize::from(release.phase() == Phase::Published);
        prop_assert_eq!(shuffled.sim.requested(Effect::Promote), published);
        prop_assert_eq!(shuffled.sim.requested(Effect::Emit(EventKind::Published)), published);
        let blocked = shuffled.sim.requested(Effect::Emit(EventKind::Blocked));
        prop_assert!(blocked <= 1, "Blocked announced {} times", blocked);
        if release.phase() == Phase::Blocked {
            prop_assert_eq!(blocked, 1);
        }
        prop_assert_eq!(
            release.emitted.contains(&EventKind::Blocked),
            blocked == 1
        );
        prop_assert!(shuffled.dropped.is_empty(), "{:?}", shuffled.dropped);
    }
}

/// A native-mode release whose candidate index exists and whose images are not scanned yet.
fn candidate_ready() -> Simulation {
    let mut sim = Simulation::new();
    sim.deliver(&upload(ManifestMode::Native));
    sim.deliver(&build_changed(BuildRole::Amd64, BuildStatus::Succeeded));
    sim.deliver(&build_changed(BuildRole::Arm64, BuildStatus::Succeeded));
    assert_eq!(sim.release().phase(), Phase::CandidateReady);
    assert_eq!(sim.release().gate(), GateState::Waiting);
    sim
}

/// A release published after both images passed.
fn published() -> Simulation {
    let mut sim = candidate_ready();
    assert!(sim
        .deliver(&scan(Arch::Amd64, Judgement::Pass, FIRST_SCAN))
        .is_none());
    assert!(sim
        .deliver(&scan(Arch::Arm64, Judgement::Pass, FIRST_SCAN))
        .is_none());
    assert_eq!(sim.release().phase(), Phase::Published);
    sim
}

#[test]
fn a_scan_of_the_image_index_is_ignored() {
    // Given a release with its candidate index.
    let mut sim = candidate_ready();

    // When a scan of the index itself arrives.
    let reason = sim
        .deliver(&scan_of(
            Arch::Amd64,
            index_digest(),
            Judgement::Pass,
            FIRST_SCAN,
        ))
        .expect("the scan is ignored");

    // Then it is ignored: only the per-arch images are judged.
    assert!(
        matches!(reason, IgnoreReason::IndexScanned { .. }),
        "{reason}"
    );
    assert!(sim.release().scans.is_empty());
    assert_eq!(sim.release().phase(), Phase::CandidateReady);
}

#[test]
fn a_scan_of_another_image_than_the_candidates_child_is_ignored() {
    // Given a release with its candidate index.
    let mut sim = candidate_ready();

    // When a scan of an unrelated amd64 image arrives, and one that names arm64's image
    // as the amd64 one.
    for digest in [Digest::of(b"someone else"), child_digest(Arch::Arm64)] {
        let reason = sim
            .deliver(&scan_of(
                Arch::Amd64,
                digest.clone(),
                Judgement::Block,
                FIRST_SCAN,
            ))
            .expect("the scan is ignored");

        // Then neither is recorded nor blocks the release.
        assert!(
            matches!(&reason, IgnoreReason::NotTheCandidateImage { arch: Arch::Amd64, digest: named, .. } if *named == digest),
            "{reason}"
        );
    }
    assert!(sim.release().scans.is_empty());
    assert_eq!(sim.release().phase(), Phase::CandidateReady);
}

#[test]
fn a_blocking_scan_after_publication_is_announced_and_the_publication_stands() {
    // Given a published release.
    let mut sim = published();
    let published_as = sim.release().published.clone();

    // When a newer scan of one of its images blocks, delivered twice.
    assert!(sim
        .deliver(&scan(Arch::Arm64, Judgement::Block, RESCAN))
        .is_none());
    let again = sim
        .deliver(&scan(Arch::Arm64, Judgement::Block, RESCAN))
        .expect("the duplicate changes nothing");

    // Then the publication stands, the finding is recorded once and announced once.
    assert!(again.is_duplicate(), "{again}");
    assert_eq!(sim.release().phase(), Phase::Published);
    assert_eq!(sim.release().published, published_as);
    assert_eq!(sim.requested(Effect::Promote), 1);
    assert_eq!(sim.requested(Effect::Emit(EventKind::Blocked)), 0);
    assert_eq!(sim.requested(Effect::Announce(0)), 1);
    let notice = &sim.release().notices[0];
    assert!(notice.announced);
    assert!(matches!(&notice.kind, NoticeKind::Vulnerable { scan } if scan.arch == Arch::Arm64));

    // And a passing rescan after it is not news.
    let reason = sim
        .deliver(&scan(Arch::Arm64, Judgement::Pass, RESCAN + 1))
        .expect("a passing rescan is ignored");
    assert!(
        matches!(reason, IgnoreReason::PassingScanAfterPublication { .. }),
        "{reason}"
    );
}

#[test]
fn the_deadline_never_fails_a_blocked_release() {
    // Given a blocked release.
    let mut sim = candidate_ready();
    sim.deliver(&scan(Arch::Amd64, Judgement::Block, FIRST_SCAN));
    assert_eq!(sim.release().phase(), Phase::Blocked);

    // When the reconciler says it missed its deadline.
    let reason = sim
        .deliver(&Fact::Abandoned {
            reason: "no final state 6 hours after the upload".into(),
        })
        .expect("a blocked release rests");

    // Then it stays blocked, and a later passing scan still publishes it.
    assert!(
        matches!(
            reason,
            IgnoreReason::NotInFlight {
                phase: Phase::Blocked,
                ..
            }
        ),
        "{reason}"
    );
    assert_eq!(sim.release().phase(), Phase::Blocked);
    sim.deliver(&scan(Arch::Amd64, Judgement::Pass, RESCAN));
    sim.deliver(&scan(Arch::Arm64, Judgement::Pass, RESCAN));
    assert_eq!(sim.release().phase(), Phase::Published);
}

fn reupload(version: &str) -> Fact {
    Fact::SourceUploaded {
        source: source_version(version),
        manifest_mode: ManifestMode::Native,
    }
}

#[test]
fn a_new_version_of_a_failed_release_starts_the_next_attempt() {
    // Given a release whose amd64 build failed.
    let mut sim = both_builds_running(ManifestMode::Native);
    sim.deliver(&build_changed(BuildRole::Amd64, BuildStatus::Failed));
    assert_eq!(sim.release().phase(), Phase::Failed);
    let stops = sim.requested(Effect::StopBuild(BuildRole::Arm64));

    // When a new version of the same object key is uploaded.
    assert!(sim.deliver(&reupload("v2")).is_none());

    // Then attempt 2 starts with new builds from the new version, and attempt 1 is history.
    let release = sim.release();
    assert_eq!(release.attempt, 2);
    assert_eq!(release.source.revision(), "v2");
    assert_eq!(release.phase(), Phase::Building);
    assert_eq!(release.history.len(), 1);
    assert_eq!(release.history[0].outcome, Phase::Failed);
    assert_eq!(release.history[0].revision, "v1");
    assert_eq!(sim.requested(Effect::StartBuild(BuildRole::Amd64)), 2);
    assert_eq!(sim.requested(Effect::StopBuild(BuildRole::Arm64)), stops);
    assert!(release.emitted.contains(&EventKind::Started));

    // And a late redelivery of version 1 starts nothing.
    let reason = sim.deliver(&reupload("v1")).expect("a late delivery");
    assert!(
        matches!(reason, IgnoreReason::AttemptEnded { attempt: 1, .. }),
        "{reason}"
    );
    assert_eq!(sim.release().attempt, 2);
}

#[test]
fn a_new_version_of_a_blocked_release_starts_the_next_attempt() {
    // Given a blocked release.
    let mut sim = candidate_ready();
    sim.deliver(&scan(Arch::Amd64, Judgement::Block, FIRST_SCAN));
    assert_eq!(sim.release().phase(), Phase::Blocked);

    // When a new version is uploaded.
    assert!(sim.deliver(&reupload("v2")).is_none());

    // Then the next attempt builds afresh: no candidate, no scans, no events yet but Started.
    let release = sim.release();
    assert_eq!(release.attempt, 2);
    assert_eq!(release.candidate, None);
    assert!(release.scans.is_empty());
    assert_eq!(release.emitted, vec![EventKind::Started]);
    assert_eq!(release.history[0].outcome, Phase::Blocked);
}

#[test]
fn a_new_version_of_a_published_release_is_refused_and_announced() {
    let mut sim = published();
    assert!(sim.deliver(&reupload("v2")).is_none());
    let release = sim.release();
    assert_eq!(release.attempt, 1);
    assert_eq!(release.phase(), Phase::Published);
    assert!(matches!(
        &release.notices[0].kind,
        NoticeKind::Rejected {
            reason: RejectReason::Published { attempt: 1 },
            ..
        }
    ));
    assert_eq!(sim.requested(Effect::Announce(0)), 1);
}

#[test]
fn an_upload_from_another_key_whose_name_sanitises_to_a_taken_tag_is_refused() {
    let mut sim = both_builds_running(ManifestMode::Native);
    let mut other = source_version("x1");
    other.key = "releases/team/myapp-1.4.2.zip".into();
    assert!(sim
        .deliver(&Fact::SourceUploaded {
            source: other,
            manifest_mode: ManifestMode::Native,
        })
        .is_none());
    assert!(matches!(
        &sim.release().notices[0].kind,
        NoticeKind::Rejected { reason: RejectReason::TakenBy { key }, .. } if key == "releases/myapp-1.4.2.zip"
    ));
    assert_eq!(sim.release().source.revision(), "v1");
}

#[test]
fn a_reserved_name_is_recorded_as_refused_and_announced_once() {
    let mut sim = Simulation::new();
    let refused = Fact::SourceRefused {
        source: source(),
        reason: RejectReason::MovingTag {
            tag: "latest".into(),
        },
    };
    assert!(sim.deliver(&refused).is_none());
    assert!(sim.deliver(&refused).is_some());
    assert_eq!(sim.release().phase(), Phase::Rejected);
    assert!(sim.started.is_empty());
    assert_eq!(sim.requested(Effect::Announce(0)), 1);
    assert_eq!(sim.release().notices.len(), 1);
}

#[test]
fn early_scans_are_bounded_and_only_the_pushed_images_scans_stay() {
    // Given a release whose builds are running, and 2,000 pushes under its amd64 tag by
    // someone else, each scanned.
    let mut sim = both_builds_running(ManifestMode::Native);
    for n in 0..2000 {
        sim.deliver(&scan_of(
            Arch::Amd64,
            Digest::of(format!("foreign {n}").as_bytes()),
            Judgement::Block,
            n + 1,
        ));
    }
    // Then the record keeps a bounded number of them.
    assert!(
        sim.release().scans.len() <= 2,
        "{}",
        sim.release().scans.len()
    );
    assert!(serde_json::to_string(sim.release()).unwrap().len() < 32 * 1024);

    // When the build reports the image it pushed, only that image's scans count.
    sim.deliver(&Fact::BuildChanged {
        role: BuildRole::Amd64,
        build_id: build_id(BuildRole::Amd64),
        status: BuildStatus::Succeeded,
        image_digest: Some(child_digest(Arch::Amd64)),
        image_platform: None,
        builder_image: None,
        origin: None,
    });
    assert!(sim.release().scans.is_empty());
    let reason = sim
        .deliver(&scan_of(
            Arch::Amd64,
            Digest::of(b"foreign late"),
            Judgement::Block,
            5000,
        ))
        .expect("not the pushed image");
    assert!(
        matches!(reason, IgnoreReason::NotThePushedImage { .. }),
        "{reason}"
    );
}

#[test]
fn a_scan_of_a_failed_release_is_ignored() {
    // Given a release whose arm64 build failed after amd64's image was pushed.
    let mut sim = Simulation::new();
    sim.deliver(&upload(ManifestMode::Native));
    sim.deliver(&build_changed(BuildRole::Amd64, BuildStatus::Succeeded));
    sim.deliver(&build_changed(BuildRole::Arm64, BuildStatus::Failed));

    // When amd64's scan arrives.
    let reason = sim
        .deliver(&scan(Arch::Amd64, Judgement::Pass, FIRST_SCAN))
        .expect("the scan is ignored");

    // Then it no longer matters.
    assert!(
        matches!(reason, IgnoreReason::ReleaseFailed { .. }),
        "{reason}"
    );
    assert!(sim.release().scans.is_empty());
    assert_eq!(sim.release().phase(), Phase::Failed);
}

#[test]
fn the_same_scan_again_changes_nothing() {
    // Given a release that recorded amd64's scan.
    let mut sim = candidate_ready();
    let fact = scan(Arch::Amd64, Judgement::Pass, FIRST_SCAN);
    assert!(sim.deliver(&fact).is_none());
    let before = sim.release().clone();

    // When the same judgement arrives again.
    let reason = sim.deliver(&fact).expect("the scan is ignored");

    // Then it is a duplicate.
    assert!(reason.is_duplicate(), "{reason}");
    assert_eq!(sim.release(), &before);
}

#[test]
fn an_older_scan_than_the_recorded_one_is_ignored() {
    // Given a release that recorded a newer, passing scan of amd64.
    let mut sim = candidate_ready();
    assert!(sim
        .deliver(&scan(Arch::Amd64, Judgement::Pass, RESCAN))
        .is_none());

    // When an older, blocking scan of the same image arrives late.
    let reason = sim
        .deliver(&scan(Arch::Amd64, Judgement::Block, FIRST_SCAN))
        .expect("the scan is ignored");

    // Then the newer verdict stands and the release is not blocked.
    assert!(matches!(reason, IgnoreReason::OlderScan { .. }), "{reason}");
    assert_eq!(sim.release().phase(), Phase::CandidateReady);
    assert!(sim
        .release()
        .verdict_for(Arch::Amd64, &child_digest(Arch::Amd64))
        .is_some_and(|s| s.verdict.passes() && s.scanned_at == RESCAN));
}

#[test]
fn a_newer_passing_scan_lifts_a_block_and_promotes() {
    // Given a release blocked by amd64's scan while arm64 passed.
    let mut sim = candidate_ready();
    sim.deliver(&scan(Arch::Arm64, Judgement::Pass, FIRST_SCAN));
    sim.deliver(&scan(Arch::Amd64, Judgement::Block, FIRST_SCAN));
    assert_eq!(sim.release().phase(), Phase::Blocked);
    assert_eq!(sim.requested(Effect::Emit(EventKind::Blocked)), 1);
    assert_eq!(sim.requested(Effect::Promote), 0);

    // When amd64 is scanned again and passes.
    assert!(sim
        .deliver(&scan(Arch::Amd64, Judgement::Pass, RESCAN))
        .is_none());

    // Then the release is promoted, once.
    assert_eq!(sim.release().phase(), Phase::Published);
    assert_eq!(
        sim.release().published.as_ref().unwrap().tags,
        release_tags()
    );
    assert_eq!(sim.requested(Effect::Promote), 1);
    assert_eq!(sim.requested(Effect::Emit(EventKind::Published)), 1);
    assert_eq!(sim.requested(Effect::Emit(EventKind::Blocked)), 1);
}

#[test]
fn scans_before_the_candidate_are_judged_once_it_exists() {
    // Given both builds running and both images pushed and scanned clean before either
    // build's success is delivered.
    let mut sim = both_builds_running(ManifestMode::Native);
    assert!(sim
        .deliver(&scan(Arch::Amd64, Judgement::Pass, FIRST_SCAN))
        .is_none());
    assert!(sim
        .deliver(&scan(Arch::Arm64, Judgement::Pass, FIRST_SCAN))
        .is_none());
    assert_eq!(sim.release().phase(), Phase::Building);
    assert_eq!(sim.requested(Effect::Promote), 0);

    // When the builds report.
    sim.deliver(&build_changed(BuildRole::Amd64, BuildStatus::Succeeded));
    sim.deliver(&build_changed(BuildRole::Arm64, BuildStatus::Succeeded));

    // Then the invocation that assembled the candidate also promoted it.
    assert_eq!(sim.release().phase(), Phase::Published);
    assert_eq!(sim.requested(Effect::AssembleCandidate), 1);
    assert_eq!(sim.requested(Effect::Promote), 1);
    assert_eq!(sim.requested(Effect::Emit(EventKind::CandidateReady)), 1);
    assert_eq!(sim.requested(Effect::Emit(EventKind::Published)), 1);
}

#[test]
fn a_promotion_claim_that_was_never_performed_is_taken_over_after_the_lease() {
    // Given amd64 passed, and the invocation judging arm64's passing scan claimed the
    // attestation that precedes the promotion and died.
    let mut sim = candidate_ready();
    sim.deliver(&scan(Arch::Amd64, Judgement::Pass, FIRST_SCAN));
    let last = scan(Arch::Arm64, Judgement::Pass, FIRST_SCAN);
    let claimed_at = sim.tick();
    let (next, effects) = applied(decide(sim.stored.as_ref(), &sim.key, &last, claimed_at));
    assert_eq!(effects, vec![Effect::Attest]);
    sim.store(next);
    sim.count(&effects);

    // When the scan is redelivered within the lease.
    // Then it is a duplicate, and the release is not published yet.
    assert!(sim.deliver(&last).is_some());
    assert_eq!(sim.release().phase(), Phase::CandidateReady);

    // When it is redelivered once the lease has run out.
    sim.now = claimed_at + CLAIM_LEASE_MS - TICK;
    assert!(sim.deliver(&last).is_none());

    // Then the new invocation signs again, promotes and announces the release.
    assert_eq!(sim.requested(Effect::Attest), 2);
    assert_eq!(sim.requested(Effect::Promote), 1);
    assert_eq!(sim.requested(Effect::Emit(EventKind::Published)), 1);
    assert_eq!(sim.release().phase(), Phase::Published);
    assert!(sim.release().pending.is_empty());
}

// ---------------------------------------------------------------------------------------
// Claims and their lease
// ---------------------------------------------------------------------------------------

#[test]
fn a_dead_invocations_claims_are_taken_over_only_after_the_lease() {
    // Given an invocation that claimed both StartBuilds and died before performing them.
    let key = key();
    let fact = upload(ManifestMode::Native);
    let (stored, effects) = applied(decide(None, &key, &fact, T0));
    let starts = vec![
        Effect::StartBuild(BuildRole::Amd64),
        Effect::StartBuild(BuildRole::Arm64),
    ];
    assert_eq!(effects, starts);
    assert!(stored.pending.iter().all(|claim| claim.claimed_at == T0));

    // When the upload is redelivered while the claims are fresh.
    let early = decide(Some(&stored), &key, &fact, T0 + CLAIM_LEASE_MS - 1);

    // Then the redelivery leaves the claimed effects to their owner.
    let reason = ignored(early);
    assert!(reason.is_duplicate(), "{reason}");

    // When it is redelivered once the lease has run out.
    let takeover = T0 + CLAIM_LEASE_MS;
    let (taken, effects) = applied(decide(Some(&stored), &key, &fact, takeover));

    // Then exactly the unperformed effects are claimed again, by the new invocation.
    assert_eq!(effects, starts);
    assert_eq!(taken.pending.len(), 2);
    assert!(taken
        .pending
        .iter()
        .all(|claim| claim.claimed_at == takeover));

    // And a third delivery right after the takeover leaves them to the new owner.
    assert!(matches!(
        decide(Some(&taken), &key, &fact, takeover + 1),
        Decision::Ignore(_)
    ));
}

#[test]
fn a_takeover_does_not_restart_a_build_that_reported_in() {
    // Given an invocation that claimed both StartBuilds, started amd64 and died before
    // recording anything, and amd64's completion that arrived meanwhile.
    let key = key();
    let fact = upload(ManifestMode::Native);
    let (stored, _) = applied(decide(None, &key, &fact, T0));
    let (stored, effects) = applied(decide(
        Some(&stored),
        &key,
        &build_of_attempt(BuildRole::Amd64, BuildStatus::Succeeded, 1, "v1"),
        T0 + 1,
    ));
    assert!(effects.is_empty());

    // When the upload is redelivered after the lease.
    let (next, effects) = applied(decide(Some(&stored), &key, &fact, T0 + CLAIM_LEASE_MS));

    // Then only the arm64 build is claimed again.
    assert_eq!(effects, vec![Effect::StartBuild(BuildRole::Arm64)]);
    assert_eq!(
        next.pending
            .iter()
            .map(|claim| claim.effect)
            .collect::<Vec<_>>(),
        effects
    );
}

#[test]
fn any_later_delivery_repairs_a_candidate_claim_that_was_never_performed() {
    // Given both builds started, amd64 succeeded, and the invocation handling arm64's
    // success claimed the candidate and died.
    let mut sim = Simulation::new();
    sim.deliver(&upload(ManifestMode::Native));
    sim.deliver(&build_changed(BuildRole::Amd64, BuildStatus::Succeeded));
    let success = build_changed(BuildRole::Arm64, BuildStatus::Succeeded);
    let claimed_at = sim.tick();
    let (next, effects) = applied(decide(sim.stored.as_ref(), &sim.key, &success, claimed_at));
    assert_eq!(effects, vec![Effect::AssembleCandidate]);
    sim.store(next);
    sim.count(&effects);

    // When the event is redelivered within the lease.
    // Then it is a duplicate.
    assert!(sim.deliver(&success).is_some());
    assert_eq!(sim.release().phase(), Phase::Assembling);

    // When it is redelivered once the lease has run out (a delivery advances the clock by
    // one tick, so it lands exactly at the lease's end).
    sim.now = claimed_at + CLAIM_LEASE_MS - TICK;
    assert!(sim.deliver(&success).is_none());

    // Then the candidate is assembled by the new invocation and the release is ready.
    assert_eq!(sim.requested(Effect::AssembleCandidate), 2);
    assert_eq!(sim.requested(Effect::Emit(EventKind::CandidateReady)), 1);
    assert_eq!(sim.release().phase(), Phase::CandidateReady);
    assert!(sim.release().pending.is_empty());
}

// ---------------------------------------------------------------------------------------
// Concurrent invocations and the conditional write
// ---------------------------------------------------------------------------------------

/// A simulation where both arch builds were started and neither has finished.
fn both_builds_running(mode: ManifestMode) -> Simulation {
    let mut sim = Simulation::new();
    assert!(sim.deliver(&upload(mode)).is_none());
    assert_eq!(sim.release().phase(), Phase::Building);
    sim
}

#[test]
fn concurrent_successes_of_both_arches_assemble_the_candidate_once() {
    // Given both builds running.
    let mut sim = both_builds_running(ManifestMode::Native);
    let amd64 = build_changed(BuildRole::Amd64, BuildStatus::Succeeded);
    let arm64 = build_changed(BuildRole::Arm64, BuildStatus::Succeeded);

    // When both SUCCEEDED events are decided on the same stored version.
    let now = sim.tick();
    let (stored, version) = sim.read();
    let (amd64_next, amd64_effects) = applied(decide(stored.as_ref(), &sim.key, &amd64, now));
    let (arm64_next, arm64_effects) = applied(decide(stored.as_ref(), &sim.key, &arm64, now));

    // Then neither sees both successes, so neither asks for the candidate yet.
    assert!(amd64_effects.is_empty());
    assert!(arm64_effects.is_empty());

    // When amd64 writes first: arm64's conditional write fails, so it reads and decides again.
    assert_eq!(sim.write_if(amd64_next, version), Ok(()));
    assert_eq!(sim.write_if(arm64_next, version), Err(Conflict));
    let (stored, version) = sim.read();
    let (arm64_next, arm64_effects) = applied(decide(stored.as_ref(), &sim.key, &arm64, now));

    // Then the retry sees both successes and claims the candidate, exactly once.
    assert_eq!(arm64_effects, vec![Effect::AssembleCandidate]);
    assert_eq!(sim.write_if(arm64_next, version), Ok(()));
    sim.perform(arm64_effects);
    assert_eq!(sim.requested(Effect::AssembleCandidate), 1);
    assert_eq!(sim.requested(Effect::Emit(EventKind::CandidateReady)), 1);
    assert_eq!(sim.release().phase(), Phase::CandidateReady);
}

#[test]
fn without_the_version_check_one_success_would_be_lost() {
    // Given both builds running and both SUCCEEDED events decided on the same version.
    let mut sim = both_builds_running(ManifestMode::Native);
    let now = sim.tick();
    let (stored, _) = sim.read();
    let decide_on_stored = |role| {
        applied(decide(
            stored.as_ref(),
            &key(),
            &build_changed(role, BuildStatus::Succeeded),
            now,
        ))
        .0
    };
    let amd64_next = decide_on_stored(BuildRole::Amd64);
    let arm64_next = decide_on_stored(BuildRole::Arm64);

    // When both are written unconditionally, last writer wins.
    sim.store(amd64_next);
    sim.store(arm64_next);

    // Then amd64's success is gone and the release would wait forever: this is what the
    // conditional write in the executor prevents.
    assert_eq!(sim.release().amd64.status, None);
    assert_eq!(sim.release().phase(), Phase::Building);
}

#[test]
fn concurrent_duplicates_of_the_last_success_claim_the_candidate_once() {
    // Given amd64 succeeded, and arm64's SUCCEEDED delivered twice at the same moment.
    let mut sim = both_builds_running(ManifestMode::Native);
    sim.deliver(&build_changed(BuildRole::Amd64, BuildStatus::Succeeded));
    let arm64 = build_changed(BuildRole::Arm64, BuildStatus::Succeeded);
    let now = sim.tick();
    let (stored, version) = sim.read();

    // When both decide on the same version.
    let (first_next, first_effects) = applied(decide(stored.as_ref(), &sim.key, &arm64, now));
    let (second_next, second_effects) = applied(decide(stored.as_ref(), &sim.key, &arm64, now));

    // Then both would claim the candidate, but only the first claim is written.
    assert_eq!(first_effects, vec![Effect::AssembleCandidate]);
    assert_eq!(second_effects, vec![Effect::AssembleCandidate]);
    assert_eq!(sim.write_if(first_next, version), Ok(()));
    assert_eq!(sim.write_if(second_next, version), Err(Conflict));

    // And the loser, deciding again, finds the fresh claim and leaves it alone.
    let (stored, _) = sim.read();
    let reason = ignored(decide(stored.as_ref(), &sim.key, &arm64, now));
    assert!(reason.is_duplicate(), "{reason}");
}

/// One invocation racing others: read and decide, then write conditionally; a conflict
/// sends it back to read. Effects count as claimed once their claim is written.
struct Invocation {
    fact: Fact,
    decided: Option<(u64, Decision)>,
    claimed: Option<Vec<Effect>>,
}

impl Invocation {
    fn new(fact: Fact) -> Self {
        Invocation {
            fact,
            decided: None,
            claimed: None,
        }
    }

    fn done(&self) -> bool {
        self.claimed.is_some()
    }

    fn step(&mut self, sim: &mut Simulation, now: Millis) {
        match self.decided.take() {
            None => {
                let (stored, version) = sim.read();
                let decision = decide(stored.as_ref(), &sim.key, &self.fact, now);
                self.decided = Some((version, decision));
            }
            Some((_, Decision::Ignore(_))) => self.claimed = Some(Vec::new()),
            Some((version, Decision::Apply { next, effects })) => {
                if sim.write_if(*next, version).is_ok() {
                    self.claimed = Some(effects);
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_interleaving_of_concurrent_successes_claims_each_effect_once(
        mode in prop_oneof![Just(ManifestMode::Native), Just(ManifestMode::Codebuild)],
        copies in (1..=2usize, 1..=2usize),
        schedule in proptest::collection::vec(0..4usize, 0..24),
    ) {
        // Given both builds running, and each SUCCEEDED event delivered once or twice to
        // invocations that run at the same time.
        let mut sim = both_builds_running(mode);
        let now = sim.tick();
        let mut invocations: Vec<Invocation> = std::iter::repeat_n(BuildRole::Amd64, copies.0)
            .chain(std::iter::repeat_n(BuildRole::Arm64, copies.1))
            .map(|role| Invocation::new(build_changed(role, BuildStatus::Succeeded)))
            .collect();

        // When their reads, decisions and conditional writes interleave as scheduled (and
        // round-robin once the schedule runs out).
        let mut turns = schedule.into_iter().chain((0..).map(|turn| turn % 4));
        while invocations.iter().any(|i| !i.done()) {
            let turn = turns.next().unwrap_or(0) % invocations.len();
            if !invocations[turn].done() {
                invocations[turn].step(&mut sim, now);
            }
        }
        let claimed: Vec<Effect> = invocations
            .iter_mut()
            .flat_map(|i| i.claimed.take().unwrap_or_default())
            .collect();
        sim.perform(claimed);

        // Then both successes are recorded and the manifest step was claimed exactly once.
        let release = sim.release();
        prop_assert_eq!(release.amd64.status, Some(BuildStatus::Succeeded));
        prop_assert_eq!(release.arm64.status, Some(BuildStatus::Succeeded));
        prop_assert!(release.pending.is_empty());
        match mode {
            ManifestMode::Native => {
                prop_assert_eq!(sim.requested(Effect::AssembleCandidate), 1);
                prop_assert_eq!(sim.requested(Effect::Emit(EventKind::CandidateReady)), 1);
                prop_assert_eq!(release.phase(), Phase::CandidateReady);
            }
            ManifestMode::Codebuild => {
                prop_assert_eq!(sim.requested(Effect::StartBuild(BuildRole::Manifest)), 1);
                prop_assert_eq!(release.phase(), Phase::Assembling);
            }
        }
    }
}

#[test]
fn concurrent_passing_scans_of_both_arches_promote_once() {
    // Given a release with its candidate index and no verdict yet.
    let mut sim = candidate_ready();
    let amd64 = scan(Arch::Amd64, Judgement::Pass, FIRST_SCAN);
    let arm64 = scan(Arch::Arm64, Judgement::Pass, FIRST_SCAN);

    // When both passing scans are decided on the same stored version.
    let now = sim.tick();
    let (stored, version) = sim.read();
    let (amd64_next, amd64_effects) = applied(decide(stored.as_ref(), &sim.key, &amd64, now));
    let (arm64_next, arm64_effects) = applied(decide(stored.as_ref(), &sim.key, &arm64, now));

    // Then neither sees both verdicts, so neither promotes yet.
    assert!(amd64_effects.is_empty());
    assert!(arm64_effects.is_empty());

    // When amd64 writes first: arm64's conditional write fails, so it reads and decides again.
    assert_eq!(sim.write_if(amd64_next, version), Ok(()));
    assert_eq!(sim.write_if(arm64_next, version), Err(Conflict));
    let (stored, version) = sim.read();
    let (arm64_next, arm64_effects) = applied(decide(stored.as_ref(), &sim.key, &arm64, now));

    // Then the retry sees both passing verdicts and claims the attestation, then the
    // promotion, exactly once.
    assert_eq!(arm64_effects, vec![Effect::Attest]);
    assert_eq!(sim.write_if(arm64_next, version), Ok(()));
    sim.perform(arm64_effects);
    assert_eq!(sim.requested(Effect::Promote), 1);
    assert_eq!(sim.requested(Effect::Emit(EventKind::Published)), 1);
    assert_eq!(sim.release().phase(), Phase::Published);
    assert_eq!(sim.release().scans.len(), 2);
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_interleaving_of_concurrent_scans_and_the_last_success_promotes_once(
        copies in (1..=2usize, 1..=2usize, 1..=2usize),
        schedule in proptest::collection::vec(0..6usize, 0..32),
    ) {
        // Given amd64 succeeded, and arm64's SUCCEEDED event and both images' passing scans,
        // each delivered once or twice, to invocations that run at the same time.
        let mut sim = both_builds_running(ManifestMode::Native);
        sim.deliver(&build_changed(BuildRole::Amd64, BuildStatus::Succeeded));
        let now = sim.tick();
        let success = build_changed(BuildRole::Arm64, BuildStatus::Succeeded);
        let mut invocations: Vec<Invocation> = std::iter::repeat_n(success, copies.0)
            .chain(std::iter::repeat_n(
                scan(Arch::Amd64, Judgement::Pass, FIRST_SCAN),
                copies.1,
            ))
            .chain(std::iter::repeat_n(
                scan(Arch::Arm64, Judgement::Pass, FIRST_SCAN),
                copies.2,
            ))
            .map(Invocation::new)
            .collect();

        // When their reads, decisions and conditional writes interleave as scheduled (and
        // round-robin once the schedule runs out), and the claimed effects are performed.
        let mut turns = schedule.into_iter().chain((0..).map(|turn| turn % 6));
        while invocations.iter().any(|i| !i.done()) {
            let turn = turns.next().unwrap_or(0) % invocations.len();
            if !invocations[turn].done() {
                invocations[turn].step(&mut sim, now);
            }
        }
        let claimed: Vec<Effect> = invocations
            .iter_mut()
            .flat_map(|i| i.claimed.take().unwrap_or_default())
            .collect();
        sim.perform(claimed);

        // Then both verdicts are recorded, the candidate was assembled once, and it was
        // promoted and announced once.
        let release = sim.release();
        prop_assert_eq!(release.scans.len(), 2);
        prop_assert!(release.pending.is_empty());
        prop_assert_eq!(release.phase(), Phase::Published);
        prop_assert_eq!(sim.requested(Effect::AssembleCandidate), 1);
        prop_assert_eq!(sim.requested(Effect::Promote), 1);
        prop_assert_eq!(sim.requested(Effect::Emit(EventKind::Published)), 1);
        prop_assert_eq!(sim.requested(Effect::Emit(EventKind::CandidateReady)), 1);
    }
}

// ---------------------------------------------------------------------------------------
// Facts that change nothing
// ---------------------------------------------------------------------------------------

/// A native-mode release with both builds started and nothing finished.
fn running_release() -> Release {
    both_builds_running(ManifestMode::Native).release().clone()
}

#[test]
fn a_build_change_for_an_unknown_release_is_ignored() {
    // Given no release in the ledger.
    // When a build reports for it.
    let decision = decide(
        None,
        &key(),
        &build_changed(BuildRole::Amd64, BuildStatus::Succeeded),
        T0,
    );

    // Then nothing is recorded: archgate did not start that release.
    let reason = ignored(decision);
    assert!(
        matches!(reason, IgnoreReason::UnknownRelease { .. }),
        "{reason}"
    );
}

#[test]
fn a_build_that_is_not_the_recorded_one_is_ignored() {
    // Given a release whose amd64 build is recorded as build-amd64.
    let release = running_release();

    // When a different amd64 build reports success.
    let stranger = Fact::BuildChanged {
        role: BuildRole::Amd64,
        build_id: "build-someone-else".to_owned(),
        status: BuildStatus::Succeeded,
        image_digest: None,
        image_platform: None,
        builder_image: None,
        origin: Some(BuildOrigin {
            attempt: 1,
            upload: None,
        }),
    };
    let reason = ignored(decide(Some(&release), &key(), &stranger, T0 + 10));

    // Then it is ignored, naming both builds.
    assert!(
        matches!(reason, IgnoreReason::OtherBuild { .. }),
        "{reason}"
    );
    let line = reason.to_string();
    assert!(line.contains("build-someone-else"), "{line}");
    assert!(line.contains("build-amd64"), "{line}");
}

#[test]
fn a_build_still_in_progress_is_ignored() {
    // Given a running release.
    let release = running_release();

    // When a build reports IN_PROGRESS.
    let decision = decide(
        Some(&release),
        &key(),
        &build_changed(BuildRole::Arm64, BuildStatus::InProgress),
        T0 + 10,
    );

    // Then there is nothing to record.
    let reason = ignored(decision);
    assert!(
        matches!(
            reason,
            IgnoreReason::NotFinal {
                status: BuildStatus::InProgress,
                ..
            }
        ),
        "{reason}"
    );
}

#[test]
fn a_second_upload_while_an_attempt_is_in_flight_is_refused_and_announced() {
    // Given a release built from version v1 of the source, still building.
    let release = running_release();

    // When version v2 of the same file is uploaded.
    let reupload = Fact::SourceUploaded {
        source: source_version("v2"),
        manifest_mode: ManifestMode::Native,
    };
    let (next, effects) = applied(decide(Some(&release), &key(), &reupload, T0 + 10));

    // Then nothing is rebuilt: the refusal is recorded and announced, naming the rule.
    assert_eq!(next.attempt, 1);
    assert_eq!(next.source, release.source);
    assert_eq!(effects, vec![Effect::Announce(0)]);
    match &next.notices[0].kind {
        NoticeKind::Rejected { source, reason } => {
            assert_eq!(source.revision(), "v2");
            assert_eq!(
                *reason,
                RejectReason::InFlight {
                    attempt: 1,
                    phase: Phase::Building
                }
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_later_different_final_status_is_ignored() {
    // Given a release whose amd64 build ended SUCCEEDED.
    let mut sim = both_builds_running(ManifestMode::Native);
    sim.deliver(&build_changed(BuildRole::Amd64, BuildStatus::Succeeded));
    let release = sim.release().clone();

    // When the same build later reports FAILED.
    let decision = decide(
        Some(&release),
        &key(),
        &build_changed(BuildRole::Amd64, BuildStatus::Failed),
        sim.now + 1,
    );

    // Then the first final status stands.
    let reason = ignored(decision);
    assert!(
        matches!(
            reason,
            IgnoreReason::BuildAlreadyEnded {
                recorded: BuildStatus::Succeeded,
                ..
            }
        ),
        "{reason}"
    );
    assert_eq!(release.amd64.status, Some(BuildStatus::Succeeded));
}

#[test]
fn a_manifest_build_reporting_to_a_native_release_is_ignored() {
    // Given a release that assembles its index natively.
    let release = running_release();

    // When a manifest build reports for it.
    let decision = decide(
        Some(&release),
        &key(),
        &build_changed(BuildRole::Manifest, BuildStatus::Succeeded),
        T0 + 10,
    );

    // Then it is not the release's own build.
    let reason = ignored(decision);
    assert!(
        matches!(reason, IgnoreReason::NativeManifestBuild { .. }),
        "{reason}"
    );
}

/// Given a promotion claimed on a passing gate, when a newer blocking scan arrives before the
/// promotion is recorded, then the promotion still completes and no `Release Blocked` is sent.
#[test]
fn a_blocking_scan_during_a_promotion_neither_cancels_it_nor_announces_a_block() {
    use archgate::domain::gate::SeverityCounts;
    let key = key();
    let source = SourceObject {
        bucket: "archgate-source".into(),
        key: "releases/myapp-1.4.2.zip".into(),
        version_id: Some("v1".into()),
        etag: None,
        size: None,
        uploaded_at: None,
        sequencer: None,
    };
    let mut now = 0;
    let mut step = |release: Option<&Release>, fact: Fact| {
        now += 1;
        decide(release, &key, &fact, now)
    };
    let (mut release, _) = applied(step(
        None,
        Fact::SourceUploaded {
            source,
            manifest_mode: ManifestMode::Native,
        },
    ));
    for role in [BuildRole::Amd64, BuildRole::Arm64] {
        (release, _) = applied(step(
            Some(&release),
            Fact::Completed(EffectResult::BuildStarted {
                role,
                build_id: build_id(role),
            }),
        ));
        if let Decision::Apply { next, .. } =
            step(Some(&release), build_changed(role, BuildStatus::Succeeded))
        {
            release = *next;
        }
    }
    (release, _) = applied(step(
        Some(&release),
        Fact::Completed(EffectResult::CandidatePublished {
            candidate: candidate(),
        }),
    ));
    let pass = |arch: Arch, at: i64| ScanRecord {
        arch,
        digest: Digest::of(arch.as_str().as_bytes()),
        verdict: Verdict::Pass {
            counts: SeverityCounts::new(),
            allowlisted: vec![],
        },
        scanned_at: at,
        evaluated_at: at,
        scanner: None,
        policy_version: None,
    };
    (release, _) = applied(step(
        Some(&release),
        Fact::ScanEvaluated(pass(Arch::Amd64, 10)),
    ));
    let (attesting, effects) = applied(step(
        Some(&release),
        Fact::ScanEvaluated(pass(Arch::Arm64, 10)),
    ));
    assert!(effects.contains(&Effect::Attest), "{effects:?}");
    let (claimed, effects) = applied(step(
        Some(&attesting),
        Fact::Completed(EffectResult::Attested {
            attestations: attestations(),
        }),
    ));
    assert!(effects.contains(&Effect::Promote), "{effects:?}");

    // A newer blocking scan of amd64 while the promotion is in flight
    let block = ScanRecord {
        verdict: Verdict::Block {
            rule: "1 CRITICAL".into(),
            counts: SeverityCounts::new(),
            worst: vec![],
        },
        scanned_at: 20,
        evaluated_at: 20,
        ..pass(Arch::Amd64, 20)
    };
    let (blocked, effects) = applied(step(Some(&claimed), Fact::ScanEvaluated(block)));
    assert!(
        effects.is_empty(),
        "nothing new while the promotion runs: {effects:?}"
    );
    assert!(
        blocked.pending.iter().any(|c| c.effect == Effect::Promote),
        "the promotion keeps its claim"
    );

    // The promotion's result lands: published, and only `Release Published` follows
    let (published, effects) = applied(step(
        Some(&blocked),
        Fact::Completed(EffectResult::Promoted {
            tags: vec![key.tag.to_string()],
        }),
    ));
    assert_eq!(published.phase(), Phase::Published);
    assert_eq!(effects, vec![Effect::Emit(EventKind::Published)]);
}

// ---------------------------------------------------------------------------------------
// Rule 11: an attempt's builds are its own
// ---------------------------------------------------------------------------------------

/// Attempt 1 failed (amd64 FAILED, arm64 asked to stop), and the new upload's attempt 2 is
/// recorded while its StartBuild calls fail (throttled): no build id is recorded yet.
fn attempt_two_waiting_for_its_builds() -> Release {
    let mut sim = both_builds_running(ManifestMode::Native);
    sim.deliver(&build_changed(BuildRole::Amd64, BuildStatus::Failed));
    assert_eq!(sim.release().phase(), Phase::Failed);
    let now = sim.tick();
    let (mut release, effects) = applied(decide(sim.stored.as_ref(), &key(), &reupload("v2"), now));
    assert!(effects.contains(&Effect::StartBuild(BuildRole::Arm64)));
    // The StartBuild calls are throttled: the claims are given back, nothing is recorded.
    release.release_claims(&effects);
    assert_eq!(release.attempt, 2);
    assert_eq!(release.build(BuildRole::Arm64).build_id, None);
    release
}

#[test]
fn a_late_build_of_an_earlier_attempt_never_enters_the_next_one() {
    // Given attempt 2 waiting for its builds to start
    let release = attempt_two_waiting_for_its_builds();

    // When attempt 1's arm64 build reports, late, that it succeeded or stopped
    for status in [
        BuildStatus::Succeeded,
        BuildStatus::Stopped,
        BuildStatus::Failed,
    ] {
        let late = build_of_attempt(BuildRole::Arm64, status, 1, "v1");
        let decision = decide(Some(&release), &key(), &late, T0 + 100);

        // Then it is ignored as another attempt's build: attempt 2 records no build, does not
        // fail, and still owes its own StartBuilds
        let next = match decision {
            Decision::Ignore(reason) => {
                assert!(
                    matches!(
                        reason,
                        IgnoreReason::BuildOfOtherAttempt {
                            attempt: 1,
                            current: 2,
                            ..
                        }
                    ),
                    "{reason}"
                );
                release.clone()
            }
            // The delivery takes up the StartBuilds nobody holds, and nothing else.
            Decision::Apply { next, effects } => {
                assert!(
                    effects.iter().all(|e| matches!(e, Effect::StartBuild(_))),
                    "{effects:?}"
                );
                *next
            }
        };
        assert_eq!(next.build(BuildRole::Arm64).build_id, None, "{status:?}");
        assert_eq!(next.phase(), Phase::Building, "{status:?}");
    }
}

#[test]
fn a_build_that_names_no_attempt_never_fills_an_empty_slot() {
    // Given attempt 2 waiting for its builds to start
    let release = attempt_two_waiting_for_its_builds();

    // When a completion arrives that names no attempt (a build started before builds carried
    // it), for a build id the release never recorded
    let decision = decide(
        Some(&release),
        &key(),
        &build_changed(BuildRole::Arm64, BuildStatus::Succeeded),
        T0 + 100,
    );

    // Then it is not taken
    let recorded = match decision {
        Decision::Ignore(reason) => {
            assert!(
                matches!(reason, IgnoreReason::UnattributedBuild { .. }),
                "{reason}"
            );
            None
        }
        Decision::Apply { next, .. } => next.build(BuildRole::Arm64).build_id.clone(),
    };
    assert_eq!(recorded, None);
}

#[test]
fn a_completion_that_overtakes_its_own_start_is_taken_by_its_attempt() {
    // Given attempt 2 waiting for its builds to start
    let release = attempt_two_waiting_for_its_builds();

    // When attempt 2's own arm64 build reports before its StartBuild answer was recorded
    let own = build_of_attempt(BuildRole::Arm64, BuildStatus::Succeeded, 2, "v2");
    let (next, _) = applied(decide(Some(&release), &key(), &own, T0 + 100));

    // Then it is recorded as attempt 2's arm64 build
    let build = next.build(BuildRole::Arm64);
    assert_eq!(build.build_id.as_deref(), Some("build-arm64-2"));
    assert_eq!(build.status, Some(BuildStatus::Succeeded));

    // And the same attempt number from another upload (a release the ledger forgot and
    // started over) is not
    let forgotten = build_of_attempt(BuildRole::Amd64, BuildStatus::Succeeded, 2, "v0");
    let reason = ignored(decide(Some(&next), &key(), &forgotten, T0 + 200));
    assert!(
        matches!(reason, IgnoreReason::BuildOfOtherAttempt { .. }),
        "{reason}"
    );
}

// ---------------------------------------------------------------------------------------
// Rule 12: every release comes to rest
// ---------------------------------------------------------------------------------------

const DEADLINE: Millis = 6 * 3_600_000;

#[test]
fn past_its_deadline_a_release_whose_assembly_keeps_failing_ends_failed_with_the_last_error() {
    // Given both builds succeeded and the index cannot be assembled: an image is gone
    let mut sim = both_builds_running(ManifestMode::Native);
    sim.deliver(&build_changed(BuildRole::Amd64, BuildStatus::Succeeded));
    let (mut release, effects) = applied(decide(
        sim.stored.as_ref(),
        &key(),
        &build_changed(BuildRole::Arm64, BuildStatus::Succeeded),
        T0 + 10,
    ));
    assert_eq!(effects, vec![Effect::AssembleCandidate]);
    let started = release.started_at();
    for at in [T0 + 20, T0 + 3_600_000, T0 + 5 * 3_600_000] {
        release.release_claims(&effects);
        release.record_failure(
            Effect::AssembleCandidate,
            "Archgate.ImageMissing",
            "image myapp:sha256:aa is not in the registry",
            at,
        );
    }
    // ... and every failed retry keeps the record fresh
    release.updated_at = started + DEADLINE;

    // When the deadline has not passed, nothing is overdue; once it has
    assert_eq!(release.overdue(started + DEADLINE, DEADLINE), None);
    let overdue = release
        .overdue(started + DEADLINE + 1, DEADLINE)
        .expect("past the deadline");
    assert!(
        overdue
            .reason
            .contains("its image index was never assembled"),
        "{}",
        overdue.reason
    );
    assert!(
        overdue.reason.contains("3 tries") && overdue.reason.contains("not in the registry"),
        "{}",
        overdue.reason
    );

    // Then the deadline ends it Failed with that reason, and its Release Failed carries the
    // last error of what it was owed
    let (failed, effects) = applied(decide(
        Some(&release),
        &key(),
        &Fact::Abandoned {
            reason: overdue.reason.clone(),
        },
        started + DEADLINE + 1,
    ));
    assert_eq!(failed.phase(), Phase::Failed);
    assert_eq!(failed.failure_reason(), Some(overdue.reason));
    assert!(effects.contains(&Effect::Emit(EventKind::Failed)));
    assert!(!effects.contains(&Effect::AssembleCandidate));
    let event = archgate::domain::release_event::release_event(&failed, EventKind::Failed);
    let last = event.detail.last_error.expect("the last error");
    assert_eq!(last.effect, "assemble candidate index");
    assert_eq!(last.tries, 3);
    assert_eq!(last.error_type, "Archgate.ImageMissing");
}

/// A candidate whose gate passed and whose signing keeps failing since `since`.
fn signing_fails_since(since: Millis) -> Release {
    let mut sim = candidate_ready();
    sim.deliver(&scan(Arch::Amd64, Judgement::Pass, FIRST_SCAN));
    let (mut release, effects) = applied(decide(
        sim.stored.as_ref(),
        &key(),
        &scan(Arch::Arm64, Judgement::Pass, FIRST_SCAN),
        since,
    ));
    assert_eq!(effects, vec![Effect::Attest]);
    release.release_claims(&effects);
    release.record_failure(
        Effect::Attest,
        "Archgate.SigningKeyUnusable",
        "the signing key alias/archgate-releases cannot sign releases: it is in state Disabled",
        since,
    );
    release
}

#[test]
fn past_its_deadline_a_release_whose_gate_passed_is_announced_stalled_once_never_failed() {
    // Given a release whose gate passed and whose signing has failed for a long time
    let since = T0 + 1_000;
    let release = signing_fails_since(since);
    assert!(release.owes_promotion());
    assert_eq!(release.overdue(since + DEADLINE, DEADLINE), None);
    let overdue = release
        .overdue(since + DEADLINE + 1, DEADLINE)
        .expect("past the deadline");
    assert!(overdue.reason.contains("Disabled"), "{}", overdue.reason);

    // When the deadline comes
    let fact = Fact::Abandoned {
        reason: overdue.reason.clone(),
    };
    let (stalled, effects) = applied(decide(Some(&release), &key(), &fact, since + DEADLINE + 1));

    // Then it is not failed: it is stalled, announced with the reason and the last error, and
    // it still owes its signing
    assert_eq!(stalled.phase(), Phase::CandidateReady);
    assert_eq!(
        stalled.stalled.as_ref().map(|s| &s.reason),
        Some(&overdue.reason)
    );
    assert!(
        effects.contains(&Effect::Emit(EventKind::Stalled)),
        "{effects:?}"
    );
    assert!(effects.contains(&Effect::Attest), "{effects:?}");
    let event = archgate::domain::release_event::release_event(&stalled, EventKind::Stalled);
    assert_eq!(event.detail_type, "Release Stalled");
    assert_eq!(
        event.detail.reason.as_deref(),
        Some(overdue.reason.as_str())
    );
    assert_eq!(
        event.detail.last_error.map(|e| e.error_type),
        Some("Archgate.SigningKeyUnusable".to_owned())
    );

    // And once announced, the next pass past the deadline changes nothing
    let (announced, _) = applied(decide(
        Some(&stalled),
        &key(),
        &Fact::Completed(EffectResult::Emitted {
            kind: EventKind::Stalled,
        }),
        since + DEADLINE + 2,
    ));
    let reason = ignored(decide(
        Some(&announced),
        &key(),
        &fact,
        since + DEADLINE + 3,
    ));
    assert!(
        matches!(reason, IgnoreReason::AlreadyAbandoned { .. }),
        "{reason}"
    );

    // And once the key signs again, the promotion still owed keeps the clock of the signing
    // (one owed step for the deadline), and once promoted the release is published, its
    // trouble gone
    let (signed, effects) = applied(decide(
        Some(&announced),
        &key(),
        &Fact::Completed(EffectResult::Attested {
            attestations: attestations(),
        }),
        since + DEADLINE + 10,
    ));
    assert_eq!(
        signed
            .troubles
            .iter()
            .map(|t| (t.effect, t.since))
            .collect::<Vec<_>>(),
        vec![(Effect::Promote, since)]
    );
    assert_eq!(effects, vec![Effect::Promote]);
    let (published, _) = applied(decide(
        Some(&signed),
        &key(),
        &Fact::Completed(EffectResult::Promoted {
            tags: release_tags(),
        }),
        since + DEADLINE + 11,
    ));
    assert_eq!(published.phase(), Phase::Published);
    assert!(published.emitted.contains(&EventKind::Stalled));
    assert!(published.troubles.is_empty());
}

// Found by 10,000 schedules (seed 3793): the key could not sign for hours, then the push was
// denied; the promotion's trouble started afresh when signing recovered, and the release
// owed its promotion past the deadline without `Release Stalled`.
#[test]
fn a_fault_that_moves_from_signing_to_the_push_keeps_the_deadline_clock() {
    // Given a passed release whose signing has failed since `since`
    let since = T0 + 3_600_000;
    let release = signing_fails_since(since);

    // When the key signs again five hours later and the push then fails
    let (signed, _) = applied(decide(
        Some(&release),
        &key(),
        &Fact::Completed(EffectResult::Attested {
            attestations: attestations(),
        }),
        since + 5 * 3_600_000,
    ));
    let mut pushing = signed.clone();
    pushing.record_failure(
        Effect::Promote,
        "Archgate.Rejected",
        "ECR PutImage was rejected (AccessDeniedException)",
        since + 5 * 3_600_000 + 1,
    );

    // Then the deadline still counts from the first signing failure
    assert!(pushing.overdue(since + DEADLINE + 1, DEADLINE).is_some());
}

#[test]
fn a_blocked_release_re_evaluated_weeks_later_counts_its_deadline_from_when_signing_became_owed() {
    // Given a release whose gate passed weeks after its attempt started (a blocked release
    // re-evaluated), and whose signing just failed once
    let weeks_later = T0 + 30 * 24 * 3_600_000;
    let release = signing_fails_since(weeks_later);

    // Then its deadline counts from that failure, not from the attempt's start
    assert_eq!(release.overdue(weeks_later + 3_600_000, DEADLINE), None);
    assert!(release
        .overdue(weeks_later + DEADLINE + 1, DEADLINE)
        .is_some());
}
