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
//! that created the build. A delivery that is not possible yet goes back to the end of the
//! queue; one that can never become possible (the manifest build of a release that failed
//! before it was started) is dropped.

use archgate::domain::release::{Candidate, CandidateChild, EventKind, Ignored, CLAIM_LEASE_MS};
use archgate::domain::{
    decide, Arch, BuildRole, BuildStatus, Decision, Digest, Effect, EffectResult, Fact,
    ManifestMode, Millis, Phase, Release, ReleaseKey, ReleaseTag, SourceObject,
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

fn build_changed(role: BuildRole, status: BuildStatus) -> Fact {
    Fact::BuildChanged {
        role,
        build_id: build_id(role),
        status,
    }
}

/// The candidate index the fake registry publishes, whichever manifest mode produced it.
fn candidate() -> Candidate {
    Candidate {
        tag: key().tag.candidate_tag(),
        digest: Digest::of(b"index"),
        children: Arch::ALL
            .iter()
            .map(|arch| CandidateChild {
                arch: *arch,
                digest: Digest::of(arch.as_str().as_bytes()),
            })
            .collect(),
        manifest: None,
        media_type: None,
    }
}

/// The next release and the claimed effects of a decision that must apply.
fn applied(decision: Decision) -> (Release, Vec<Effect>) {
    match decision {
        Decision::Apply { next, effects } => (*next, effects),
        Decision::Ignore(reason) => panic!("expected the fact to apply, it was ignored: {reason}"),
    }
}

/// Why a decision that must be ignored was ignored.
fn ignored(decision: Decision) -> Ignored {
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
    fn deliver(&mut self, fact: &Fact) -> Option<Ignored> {
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
            Effect::Promote => EffectResult::Promoted {
                tags: vec![key().tag.to_string()],
            },
            Effect::Emit(kind) => EffectResult::Emitted { kind },
        }
    }
}

/// What one delivery carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Delivery {
    Upload(ManifestMode),
    Build(BuildRole, BuildStatus),
}

impl Delivery {
    fn fact(self) -> Fact {
        match self {
            Delivery::Upload(mode) => upload(mode),
            Delivery::Build(role, status) => build_changed(role, status),
        }
    }

    fn possible(self, sim: &Simulation) -> bool {
        match self {
            Delivery::Upload(_) => true,
            Delivery::Build(role, _) => sim.started.contains(&role),
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
    emitted: BTreeSet<EventKind>,
    pending: Vec<Effect>,
}

impl Outcome {
    fn of(release: &Release) -> Self {
        Outcome {
            phase: release.phase(),
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
}

// ---------------------------------------------------------------------------------------
// Scenarios: how each build ends
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
struct Scenario {
    mode: ManifestMode,
    amd64: BuildStatus,
    arm64: BuildStatus,
    manifest: BuildStatus,
}

impl Scenario {
    fn arches_succeed(&self) -> bool {
        self.amd64 == BuildStatus::Succeeded && self.arm64 == BuildStatus::Succeeded
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
        deliveries
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
        let (phase, last_event, candidate) = if self.succeeds() {
            (
                Phase::CandidateReady,
                EventKind::CandidateReady,
                Some(candidate()),
            )
        } else {
            (Phase::Failed, EventKind::Failed, None)
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
            candidate,
            emitted: BTreeSet::from([EventKind::Started, last_event]),
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
        effects.push(Effect::Emit(if self.succeeds() {
            EventKind::CandidateReady
        } else {
            EventKind::Failed
        }));
        effects.into_iter().map(|effect| (effect, 1)).collect()
    }
}

fn final_status() -> impl Strategy<Value = BuildStatus> {
    prop_oneof![
        8 => Just(BuildStatus::Succeeded),
        1 => Just(BuildStatus::Failed),
        1 => Just(BuildStatus::Fault),
        1 => Just(BuildStatus::Stopped),
        1 => Just(BuildStatus::TimedOut),
    ]
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        prop_oneof![Just(ManifestMode::Native), Just(ManifestMode::Codebuild)],
        final_status(),
        final_status(),
        final_status(),
    )
        .prop_map(|(mode, amd64, arm64, manifest)| Scenario {
            mode,
            amd64,
            arm64,
            manifest,
        })
}

/// A scenario and its deliveries, each delivered one to three times, in any order.
fn scenario_and_deliveries() -> impl Strategy<Value = (Scenario, Vec<Delivery>)> {
    scenario().prop_flat_map(|scenario| {
        let canonical = scenario.deliveries();
        proptest::collection::vec(1..=3usize, canonical.len()).prop_flat_map(move |copies| {
            let deliveries: Vec<Delivery> = canonical
                .iter()
                .zip(copies)
                .flat_map(|(delivery, n)| std::iter::repeat_n(*delivery, n))
                .collect();
            (Just(scenario), Just(deliveries).prop_shuffle())
        })
    })
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
    assert!(reason.0.contains("duplicate delivery"), "{reason}");

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
        &build_changed(BuildRole::Amd64, BuildStatus::Succeeded),
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
    assert!(reason.0.contains("duplicate delivery"), "{reason}");
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
    assert!(reason.0.contains("no release"), "{reason}");
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
    };
    let reason = ignored(decide(Some(&release), &key(), &stranger, T0 + 10));

    // Then it is ignored, naming both builds.
    assert!(reason.0.contains("build-someone-else"), "{reason}");
    assert!(reason.0.contains("build-amd64"), "{reason}");
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
    assert!(reason.0.contains("IN_PROGRESS"), "{reason}");
}

#[test]
fn a_second_upload_of_another_version_is_ignored() {
    // Given a release built from version v1 of the source.
    let release = running_release();

    // When version v2 of the same file is uploaded.
    let reupload = Fact::SourceUploaded {
        source: source_version("v2"),
        manifest_mode: ManifestMode::Native,
    };
    let reason = ignored(decide(Some(&release), &key(), &reupload, T0 + 10));

    // Then the tag is not rebuilt, and the reason points at the existing release.
    assert!(reason.0.contains("already exists"), "{reason}");
    assert!(reason.0.contains(&key().to_string()), "{reason}");
    assert!(reason.0.contains("releases/myapp-1.4.2.zip"), "{reason}");
    assert!(reason.0.contains("v1"), "{reason}");
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
    assert!(reason.0.contains("already ended SUCCEEDED"), "{reason}");
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
    assert!(reason.0.contains("natively"), "{reason}");
}
