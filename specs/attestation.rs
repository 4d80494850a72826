//! Attestations as a specification: what the provenance and the verdict say, that the same
//! record always gives the same bytes, how a statement is enveloped (DSSE) and stored (an OCI
//! 1.1 referrer of the index), and when the state machine signs, keeps and drops them.

use archgate::domain::attestation::dsse::{pae, IN_TOTO_PAYLOAD};
use archgate::domain::attestation::referrer::{EMPTY_CONFIG, EMPTY_CONFIG_MEDIA_TYPE};
use archgate::domain::attestation::statement::{Context, GATE_FIELD};
use archgate::domain::attestation::{
    self, referrer, Attestation, AttestationKind, Descriptor, Envelope, ReferrerManifest,
};
use archgate::domain::gate::{AllowEntry, Policy, SeverityCounts, Verdict};
use archgate::domain::oci::OCI_INDEX;
use archgate::domain::release::{
    Candidate, CandidateChild, EffectResult, Publication, ScanRecord, Scanner,
};
use archgate::domain::{
    decide, Arch, BuildRole, BuildStatus, Decision, Digest, Effect, Fact, ManifestMode, Millis,
    Phase, Release, ReleaseKey, ReleaseTag, SourceObject,
};
use serde_json::Value;

const T0: Millis = 1_800_000_000_000;

fn key() -> ReleaseKey {
    ReleaseKey::new("myapp", ReleaseTag::parse("myapp-1.4.2").unwrap())
}

fn source(version: &str) -> SourceObject {
    SourceObject {
        bucket: "archgate-source-123456789012".into(),
        key: "releases/myapp-1.4.2.zip".into(),
        version_id: Some(version.into()),
        etag: Some("\"9b2cf535f27731c974343645a3985328\"".into()),
        size: Some(1024),
        uploaded_at: Some(T0),
        sequencer: Some(format!("00{version}")),
    }
}

fn child(arch: Arch) -> Digest {
    Digest::of(arch.as_str().as_bytes())
}

fn policy() -> Policy {
    Policy {
        allowlist: vec![AllowEntry {
            id: "CVE-2023-4863".into(),
            expires: time::macros::date!(2027 - 06 - 30),
            reason: "libwebp is not reachable from the service".into(),
        }],
        ..Policy::default()
    }
}

fn context(policy: &Policy) -> Context<'_> {
    Context {
        policy,
        policy_version: 0,
        amd64_project: "archgate-build-amd64",
        arm64_project: "archgate-build-arm64",
        manifest_project: None,
        region: Some("eu-west-1"),
        account_id: Some("123456789012"),
    }
}

fn applied(decision: Decision) -> (Release, Vec<Effect>) {
    match decision {
        Decision::Apply { next, effects } => (*next, effects),
        Decision::Ignore(reason) => panic!("ignored: {reason}"),
    }
}

fn step(release: Option<&Release>, fact: Fact, now: Millis) -> (Release, Vec<Effect>) {
    applied(decide(release, &key(), &fact, now))
}

fn pass(arch: Arch, at: Millis, allowlisted: Vec<String>) -> Fact {
    Fact::ScanEvaluated(ScanRecord {
        arch,
        digest: child(arch),
        verdict: Verdict::Pass {
            counts: SeverityCounts::from([(archgate::domain::gate::Severity::High, 1)]),
            allowlisted,
        },
        scanned_at: at,
        evaluated_at: at,
        scanner: Some(Scanner::Inspector),
        policy_version: None,
    })
}

fn block(arch: Arch, at: Millis) -> Fact {
    Fact::ScanEvaluated(ScanRecord {
        arch,
        digest: child(arch),
        verdict: Verdict::Block {
            rule: "1 CRITICAL > 0".into(),
            counts: SeverityCounts::new(),
            worst: vec![],
        },
        scanned_at: at,
        evaluated_at: at,
        scanner: Some(Scanner::Basic),
        policy_version: None,
    })
}

/// A release whose builds succeeded and whose candidate index is recorded; no verdict yet.
fn candidate_ready() -> Release {
    let (mut release, _) = step(
        None,
        Fact::SourceUploaded {
            source: source("v1"),
            manifest_mode: ManifestMode::Native,
        },
        T0,
    );
    for (n, arch) in Arch::ALL.into_iter().enumerate() {
        let role = BuildRole::arch(arch);
        let build_id = format!("archgate-build-{arch}:{n}");
        (release, _) = step(
            Some(&release),
            Fact::Completed(EffectResult::BuildStarted {
                role,
                build_id: build_id.clone(),
            }),
            T0 + 1_000,
        );
        (release, _) = step(
            Some(&release),
            Fact::BuildChanged {
                role,
                build_id,
                status: BuildStatus::Succeeded,
                image_digest: Some(child(arch)),
                image_platform: None,
                builder_image: Some(format!("aws/codebuild/{arch}-standard:5.0")),
                origin: None,
            },
            T0 + 300_000,
        );
    }
    let candidate = Candidate {
        tag: "myapp-1.4.2-candidate".into(),
        digest: Digest::of(b"index"),
        children: Arch::ALL
            .into_iter()
            .map(|arch| CandidateChild {
                arch,
                digest: child(arch),
            })
            .collect(),
        manifest: None,
        media_type: None,
    };
    (release, _) = step(
        Some(&release),
        Fact::Completed(EffectResult::CandidatePublished { candidate }),
        T0 + 301_000,
    );
    assert_eq!(release.phase(), Phase::CandidateReady);
    release
}

fn signed(kind: AttestationKind, statement: &[u8]) -> Attestation {
    let mut envelope = Envelope::unsigned(statement);
    envelope.add_signature("alias/archgate-releases", &[kind as u8]);
    Attestation {
        kind,
        envelope: String::from_utf8(envelope.to_bytes()).unwrap(),
    }
}

fn statement(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

#[test]
fn the_provenance_names_the_source_the_builds_and_the_index() {
    // Given a release that passed its gate
    let (release, _) = step(
        Some(&candidate_ready()),
        pass(Arch::Amd64, T0 + 400_000, vec![]),
        T0 + 400_000,
    );
    let (release, _) = step(
        Some(&release),
        pass(Arch::Arm64, T0 + 400_000, vec![]),
        T0 + 400_000,
    );
    let policy = policy();

    // When its provenance is made twice
    let one = attestation::statement::provenance(&release, &context(&policy)).unwrap();
    let two = attestation::statement::provenance(&release, &context(&policy)).unwrap();

    // Then the bytes are the same, and the statement says where the index came from
    assert_eq!(one, two);
    let doc = statement(&one);
    assert_eq!(doc["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(doc["predicateType"], "https://slsa.dev/provenance/v1");
    assert_eq!(doc["subject"][0]["name"], "myapp:myapp-1.4.2");
    assert_eq!(
        doc["subject"][0]["digest"]["sha256"],
        Digest::of(b"index").hex()
    );
    assert_eq!(doc["subject"].as_array().unwrap().len(), 3);
    let parameters = &doc["predicate"]["buildDefinition"]["externalParameters"];
    assert_eq!(
        parameters["source"]["bucket"],
        "archgate-source-123456789012"
    );
    assert_eq!(parameters["source"]["versionId"], "v1");
    assert_eq!(
        parameters["source"]["etag"],
        "\"9b2cf535f27731c974343645a3985328\""
    );
    assert_eq!(parameters["manifestMode"], "native");
    let dependencies = doc["predicate"]["buildDefinition"]["resolvedDependencies"].to_string();
    assert!(
        dependencies.contains("buildspecs/arch.yml"),
        "{dependencies}"
    );
    let builds = &doc["predicate"]["runDetails"]["byproducts"];
    assert_eq!(
        builds[0]["uri"],
        "arn:aws:codebuild:eu-west-1:123456789012:build/archgate-build-amd64:0"
    );
    assert_eq!(builds[0]["annotations"]["project"], "archgate-build-amd64");
    assert_eq!(
        builds[1]["annotations"]["builderImage"],
        "aws/codebuild/arm64-standard:5.0"
    );
    assert_eq!(builds[1]["digest"]["sha256"], child(Arch::Arm64).hex());
    assert!(builds[0]["annotations"]["startedOn"].is_string());
    assert!(builds[0]["annotations"]["finishedOn"].is_string());
}

#[test]
fn the_verdict_names_the_policy_the_scanner_and_the_accepted_findings_with_their_reasons() {
    // Given a release whose amd64 image passed with an allowlisted finding
    let (release, _) = step(
        Some(&candidate_ready()),
        pass(Arch::Amd64, T0 + 400_000, vec!["CVE-2023-4863".into()]),
        T0 + 400_000,
    );
    let (release, _) = step(
        Some(&release),
        pass(Arch::Arm64, T0 + 400_000, vec![]),
        T0 + 400_000,
    );
    let policy = policy();

    // When its verdict is made
    let doc = statement(&attestation::statement::verdict(&release, &context(&policy)).unwrap());

    // Then it is a SLSA verification summary that passed, under the policy's digest
    assert_eq!(
        doc["predicateType"],
        "https://slsa.dev/verification_summary/v1"
    );
    let predicate = &doc["predicate"];
    assert_eq!(predicate["verificationResult"], "PASSED");
    assert_eq!(predicate["policy"]["uri"], "urn:archgate:gate-policy");
    assert_eq!(
        predicate["policy"]["digest"]["sha256"]
            .as_str()
            .unwrap()
            .len(),
        64
    );
    // And per platform: scanner, counts, accepted findings with reason and expiry
    let images = &predicate[GATE_FIELD]["images"];
    assert_eq!(images[0]["platform"], "linux/amd64");
    assert_eq!(images[0]["scanner"], "inspector");
    assert_eq!(images[0]["verdict"], "pass");
    assert_eq!(images[0]["counts"]["HIGH"], 1);
    assert_eq!(images[0]["accepted"][0]["id"], "CVE-2023-4863");
    assert_eq!(images[0]["accepted"][0]["expires"], "2027-06-30");
    assert_eq!(
        images[0]["accepted"][0]["reason"],
        "libwebp is not reachable from the service"
    );
    assert_eq!(
        predicate[GATE_FIELD]["policy"]["maxFindings"]["CRITICAL"],
        0
    );
}

#[test]
fn the_gate_passing_asks_for_signatures_before_the_promotion() {
    // Given a candidate whose amd64 image passed
    let (release, _) = step(
        Some(&candidate_ready()),
        pass(Arch::Amd64, T0 + 400_000, vec![]),
        T0 + 400_000,
    );
    // When arm64 passes too
    let (release, effects) = step(
        Some(&release),
        pass(Arch::Arm64, T0 + 400_000, vec![]),
        T0 + 400_000,
    );
    // Then the attestations are claimed, not the promotion
    assert!(effects.contains(&Effect::Attest), "{effects:?}");
    assert!(!effects.contains(&Effect::Promote), "{effects:?}");

    // When they are recorded
    let made = vec![
        signed(AttestationKind::Provenance, b"{}"),
        signed(AttestationKind::Verdict, b"{}"),
    ];
    let (release, effects) = step(
        Some(&release),
        Fact::Completed(EffectResult::Attested {
            attestations: made.clone(),
        }),
        T0 + 401_000,
    );
    // Then the promotion follows, with the recorded envelopes to push
    assert_eq!(release.attestations, made);
    assert!(effects.contains(&Effect::Promote), "{effects:?}");

    // When a second signing of the same release lands (a racing delivery after a lease)
    let again = vec![
        signed(AttestationKind::Provenance, b"{\"again\":1}"),
        signed(AttestationKind::Verdict, b"{\"again\":1}"),
    ];
    let decision = decide(
        Some(&release),
        &key(),
        &Fact::Completed(EffectResult::Attested {
            attestations: again,
        }),
        T0 + 402_000,
    );
    // Then the first recorded envelopes stay: only they are ever pushed
    if let Decision::Apply { next, .. } = decision {
        assert_eq!(next.attestations, made);
    }
}

#[test]
fn a_newer_verdict_before_the_promotion_drops_the_signed_one() {
    // Given a release whose attestations are recorded and whose promotion is not claimed yet
    let mut release = candidate_ready();
    for arch in Arch::ALL {
        (release, _) = step(
            Some(&release),
            pass(arch, T0 + 400_000, vec![]),
            T0 + 400_000,
        );
    }
    release.pending.clear();
    release.attestations = vec![
        signed(AttestationKind::Provenance, b"{}"),
        signed(AttestationKind::Verdict, b"{}"),
    ];

    // When a newer passing scan of amd64 is judged
    let (rescanned, effects) = step(
        Some(&release),
        pass(Arch::Amd64, T0 + 500_000, vec![]),
        T0 + 500_000,
    );
    // Then the signed verdict no longer tells the truth: it is dropped and signed again
    assert!(rescanned.attestations.is_empty());
    assert!(effects.contains(&Effect::Attest), "{effects:?}");

    // When a blocking scan arrives instead
    let (blocked, effects) = step(
        Some(&release),
        block(Arch::Amd64, T0 + 500_000),
        T0 + 500_000,
    );
    // Then the release is blocked with nothing signed and nothing to promote
    assert_eq!(blocked.phase(), Phase::Blocked);
    assert!(blocked.attestations.is_empty());
    assert!(!effects.contains(&Effect::Attest) && !effects.contains(&Effect::Promote));

    // When a signing that started before the block lands afterwards
    let late = decide(
        Some(&blocked),
        &key(),
        &Fact::Completed(EffectResult::Attested {
            attestations: release.attestations.clone(),
        }),
        T0 + 501_000,
    );
    // Then it is not kept: a blocked release carries no provenance
    match late {
        Decision::Ignore(_) => {}
        Decision::Apply { next, .. } => assert!(next.attestations.is_empty()),
    }
}

#[test]
fn a_new_attempt_starts_without_the_attestations_of_the_last() {
    // Given a blocked release that recorded attestations once (signed before the block)
    let mut release = candidate_ready();
    (release, _) = step(
        Some(&release),
        block(Arch::Amd64, T0 + 400_000),
        T0 + 400_000,
    );
    (release, _) = step(
        Some(&release),
        pass(Arch::Arm64, T0 + 400_000, vec![]),
        T0 + 400_000,
    );
    release.attestations = vec![signed(AttestationKind::Verdict, b"{}")];
    release.pending.clear();
    release.emitted = vec![
        archgate::domain::release::EventKind::Started,
        archgate::domain::release::EventKind::CandidateReady,
        archgate::domain::release::EventKind::Blocked,
    ];
    // When a new version of the source is uploaded
    let (next, _) = step(
        Some(&release),
        Fact::SourceUploaded {
            source: source("v2"),
            manifest_mode: ManifestMode::Native,
        },
        T0 + 600_000,
    );
    // Then the next attempt carries none
    assert_eq!(next.attempt, 2, "{:?}", next.timeline);
    assert!(next.attestations.is_empty());
}

#[test]
fn a_published_record_keeps_its_attestations() {
    // Given a published release with its attestations
    let mut release = candidate_ready();
    release.attestations = vec![
        signed(AttestationKind::Provenance, b"{}"),
        signed(AttestationKind::Verdict, b"{}"),
    ];
    release.published = Some(Publication {
        tags: vec!["myapp-1.4.2".into()],
        at: T0 + 500_000,
    });
    // When a scan after publication blocks
    let (later, _) = step(
        Some(&release),
        block(Arch::Amd64, T0 + 900_000),
        T0 + 900_000,
    );
    // Then the release stays published and its attestations stay as pushed
    assert_eq!(later.phase(), Phase::Published);
    assert_eq!(later.attestations, release.attestations);
    assert_eq!(
        later.attestations[0].signed_by().as_deref(),
        Some("alias/archgate-releases")
    );
}

#[test]
fn pae_follows_the_dsse_v1_specification() {
    // The example of the DSSE protocol document.
    assert_eq!(
        pae("http://example.com/HelloWorld", b"hello world"),
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
    );
}

#[test]
fn an_envelope_reads_back_as_written() {
    let mut envelope = Envelope::unsigned(b"{\"a\":1}");
    envelope.add_signature("key", &[1, 2, 3]);
    let bytes = envelope.to_bytes();
    assert_eq!(Envelope::parse(&bytes).unwrap(), envelope);
    assert_eq!(envelope.payload_bytes().unwrap(), b"{\"a\":1}");
    assert_eq!(
        envelope.signed_message().unwrap(),
        pae(IN_TOTO_PAYLOAD, b"{\"a\":1}")
    );
}

#[test]
fn the_empty_config_is_the_oci_empty_descriptor() {
    let config = Descriptor::of(EMPTY_CONFIG_MEDIA_TYPE, EMPTY_CONFIG);
    assert_eq!(
        config.digest.as_str(),
        "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    );
    assert_eq!(config.size, 2);
}

#[test]
fn a_referrer_names_its_subject_and_reads_back() {
    // Given an envelope and an index
    let subject = Descriptor::of(OCI_INDEX, b"{\"index\":1}");
    // When its referrer is built twice
    let one = referrer(
        b"envelope",
        "https://slsa.dev/provenance/v1",
        subject.clone(),
    );
    let two = referrer(
        b"envelope",
        "https://slsa.dev/provenance/v1",
        subject.clone(),
    );
    // Then the bytes are the same, and the manifest names subject, blob and predicate
    assert_eq!(one, two);
    assert_eq!(one.digest, Digest::of(&one.manifest));
    let parsed = ReferrerManifest::parse(&one.manifest).unwrap();
    assert_eq!(parsed.subject.as_ref().unwrap().digest, subject.digest);
    assert_eq!(parsed.layers[0].digest, Digest::of(b"envelope"));
    assert_eq!(
        parsed.predicate_type(),
        Some("https://slsa.dev/provenance/v1")
    );
    assert_eq!(one.blobs[0].bytes, EMPTY_CONFIG);
    assert_eq!(parsed.embedded_envelope().unwrap(), b"envelope");
}
