#![no_main]
//! Untrusted bytes as a ledger item's document (another version's, or damaged) → the release
//! record and everything archgate does with one: its phase, what it owes, its events, and
//! the state machine on every kind of fact.
use archgate::domain::gate::Verdict;
use archgate::domain::release::ScanRecord;
use archgate::domain::release_event::{notice_event, release_event};
use archgate::domain::{
    decide, Arch, BuildOrigin, BuildRole, BuildStatus, Digest, Fact, ManifestMode, Release,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(release) = serde_json::from_slice::<Release>(data) else {
        return;
    };
    let _ = (release.phase(), release.gate(), release.expires_at());
    let _ = release.required_effects();
    let _ = release.has_unclaimed_work(0);
    let _ = release.failure_reason();
    let _ = release.blocked_reason();
    let _ = (release.overdue(i64::MAX / 2, 6 * 3_600_000), release.worst_trouble());
    for notice in &release.notices {
        let _ = notice_event(&release, notice);
    }
    for kind in &release.emitted {
        let _ = release_event(&release, *kind);
    }
    let mut source = release.source.clone();
    source.version_id = Some("fuzz".into());
    // A build of the current attempt, of an earlier one, of the same number under another
    // upload (a forgotten release's), and one that names no attempt.
    let origins = [
        Some(BuildOrigin { attempt: release.attempt, upload: Some(release.source.revision().to_owned()) }),
        Some(BuildOrigin { attempt: release.attempt.saturating_sub(1), upload: None }),
        Some(BuildOrigin { attempt: release.attempt, upload: Some("another upload".into()) }),
        None,
    ];
    let builds = origins.into_iter().flat_map(|origin| {
        [BuildStatus::Succeeded, BuildStatus::Failed, BuildStatus::Stopped].map(|status| {
            Fact::BuildChanged {
                role: BuildRole::Arm64,
                build_id: "p:y".into(),
                status,
                image_digest: Some(Digest::of(data)),
                builder_image: None,
                origin: origin.clone(),
            }
        })
    });
    let facts = [
        Fact::Nudge,
        Fact::Abandoned { reason: "deadline".into() },
        Fact::SourceUploaded { source, manifest_mode: ManifestMode::Native },
        Fact::BuildChanged {
            role: BuildRole::Amd64,
            build_id: "p:x".into(),
            status: BuildStatus::Succeeded,
            image_digest: Some(Digest::of(data)),
            builder_image: None,
            origin: None,
        },
        Fact::ScanEvaluated(ScanRecord {
            arch: Arch::Arm64,
            digest: Digest::of(data),
            verdict: Verdict::Pass { counts: Default::default(), allowlisted: Vec::new() },
            scanned_at: i64::MAX,
            evaluated_at: i64::MIN,
            scanner: None,
        }),
    ]
    .into_iter()
    .chain(builds)
    .collect::<Vec<_>>();
    for fact in &facts {
        let _ = decide(Some(&release), &release.key, fact, 0);
        let _ = decide(Some(&release), &release.key, fact, i64::MAX / 2);
    }
});
