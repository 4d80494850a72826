//! How each kind of fact is recorded on a release.

use super::*;
use crate::domain::digest::Digest;
use crate::domain::notice::{NoticeKind, RejectReason};
use crate::domain::Millis;

/// A new upload to an existing release: the next attempt of a failed or blocked release, or
/// a refusal (announced), or a late delivery of something already handled (ignored).
pub(super) fn record_upload(
    release: &mut Release,
    source: &SourceObject,
    now: Millis,
) -> Result<(), Ignored> {
    let key = release.key.clone();
    if release.source.same_upload(source)
        || release
            .queued
            .as_ref()
            .is_some_and(|q| q.same_upload(source))
    {
        // The same upload again: nothing changes, the caller reports the duplicate.
        return Ok(());
    }
    let refuse = |release: &mut Release, reason: RejectReason| {
        release.add_notice(
            NoticeKind::Rejected {
                source: source.clone(),
                reason,
            },
            now,
        );
        Ok(())
    };
    if let Some(reason) = release.reserved.clone() {
        return refuse(release, reason);
    }
    if source.key != release.source.key {
        let holder = release.source.key.clone();
        return refuse(release, RejectReason::TakenBy { key: holder });
    }
    if let Some(past) = release
        .history
        .iter()
        .find(|a| a.revision == source.revision())
    {
        return Err(Ignored(format!(
            "upload version {} of {key} started attempt {}, which has ended",
            source.revision(),
            past.attempt
        )));
    }
    if source.is_later_than(&release.source) == Some(false) {
        return Err(Ignored(format!(
            "upload version {} of {key} is older than version {} of attempt {}: a late delivery",
            source.revision(),
            release.source.revision(),
            release.attempt
        )));
    }
    match release.phase() {
        Phase::Failed | Phase::Blocked => {
            if let Some(queued) = &release.queued {
                if source.is_later_than(queued) != Some(true) {
                    return Err(Ignored(format!(
                        "a later upload of {key} (version {}) already waits to start the next attempt",
                        queued.revision()
                    )));
                }
            }
            release.note(
                now,
                format!(
                    "upload version {} queued as attempt {}",
                    source.revision(),
                    release.attempt + 1
                ),
            );
            release.queued = Some(source.clone());
            Ok(())
        }
        Phase::Published => {
            let attempt = release.attempt;
            refuse(release, RejectReason::Published { attempt })
        }
        phase @ (Phase::Building | Phase::Assembling | Phase::CandidateReady) => {
            let attempt = release.attempt;
            refuse(release, RejectReason::InFlight { attempt, phase })
        }
        Phase::Rejected => Ok(()),
    }
}

pub(super) fn record_build_status(
    release: &mut Release,
    role: BuildRole,
    build_id: &str,
    status: BuildStatus,
    image_digest: Option<&Digest>,
    now: Millis,
) -> Result<(), Ignored> {
    let key = release.key.clone();
    if release.phase() == Phase::Rejected {
        return Err(Ignored(format!(
            "{key} is a reserved name; build {build_id} is not archgate's"
        )));
    }
    if role == BuildRole::Manifest && release.manifest_mode == ManifestMode::Native {
        return Err(Ignored(format!(
            "release {key} assembles its index natively; manifest build {build_id} is not its own"
        )));
    }
    let build = release.build_mut(role);
    match &build.build_id {
        Some(recorded) if recorded != build_id => {
            return Err(Ignored(format!(
                "build {build_id} is not the {role} build archgate recorded for {key} ({recorded})"
            )))
        }
        // The completion can overtake the invocation that started the build.
        None => build.build_id = Some(build_id.to_owned()),
        Some(_) => {}
    }
    if !status.is_final() {
        return Err(Ignored(format!(
            "{role} build {build_id} is {}: not a final status",
            status.as_str()
        )));
    }
    if status == BuildStatus::Succeeded && build.image_digest.is_none() {
        build.image_digest = image_digest.cloned();
    }
    if let Some(recorded) = build.final_status() {
        if recorded != status {
            return Err(Ignored(format!(
                "{role} build {build_id} already ended {}; ignoring a later {}",
                recorded.as_str(),
                status.as_str()
            )));
        }
        release.keep_scans_of_pushed_images();
        return Ok(());
    }
    build.status = Some(status);
    build.finished_at = Some(now);
    release.keep_scans_of_pushed_images();
    release.note(
        now,
        format!("{role} build {} ", status.as_str())
            .trim_end()
            .to_owned(),
    );
    Ok(())
}

pub(super) fn record_scan(
    release: &mut Release,
    scan: &ScanRecord,
    now: Millis,
) -> Result<(), Ignored> {
    let key = release.key.clone();
    match release.phase() {
        Phase::Failed => {
            return Err(Ignored(format!(
                "release {key} failed; its scans no longer matter"
            )))
        }
        Phase::Rejected => {
            return Err(Ignored(format!(
                "{key} is a reserved name: it has no images to scan"
            )))
        }
        Phase::Published => return record_scan_after_publication(release, scan, now),
        _ => {}
    }
    if let Some(candidate) = &release.candidate {
        if scan.digest == candidate.digest {
            return Err(Ignored(format!(
                "{} is the image index of {key}; ECR scans only the per-arch images",
                scan.digest
            )));
        }
        let child = candidate.children.iter().find(|c| c.arch == scan.arch);
        if child.is_some_and(|c| c.digest != scan.digest) {
            return Err(Ignored(format!(
                "{} is not the {} image of {key}'s candidate",
                scan.digest, scan.arch
            )));
        }
    } else if let Some(pushed) = &release.build(BuildRole::arch(scan.arch)).image_digest {
        if *pushed != scan.digest {
            return Err(Ignored(format!(
                "{} is not the image the {} build of {key} pushed ({pushed})",
                scan.digest, scan.arch
            )));
        }
    }
    if let Some(existing) = release.verdict_for(scan.arch, &scan.digest) {
        // The same scan delivered again judges the same: nothing to record.
        if existing.scanned_at == scan.scanned_at && existing.verdict == scan.verdict {
            return Ok(());
        }
        if existing.recency() > scan.recency() {
            return Err(Ignored(format!(
                "an older scan of {} ({}); a newer one is already recorded",
                scan.digest, scan.arch
            )));
        }
    }
    release
        .scans
        .retain(|s| !(s.arch == scan.arch && s.digest == scan.digest));
    release.scans.push(scan.clone());
    release
        .scans
        .sort_by(|a, b| a.arch.cmp(&b.arch).then(a.digest.cmp(&b.digest)));
    release.keep_scans_of_pushed_images();
    let verdict = if scan.verdict.passes() {
        "passes"
    } else {
        "is blocked"
    };
    release.note(
        now,
        format!("{} scan of {} {verdict}", scan.arch, scan.digest),
    );
    Ok(())
}

/// A scan of a published release's image: a blocking one is news, recorded and announced
/// (`Release Vulnerable`); the release stays published.
fn record_scan_after_publication(
    release: &mut Release,
    scan: &ScanRecord,
    now: Millis,
) -> Result<(), Ignored> {
    let key = release.key.clone();
    let is_child = release.candidate.as_ref().is_some_and(|c| {
        c.children
            .iter()
            .any(|child| child.arch == scan.arch && child.digest == scan.digest)
    });
    if !is_child {
        return Err(Ignored(format!(
            "{} is not the {} image of published release {key}",
            scan.digest, scan.arch
        )));
    }
    if scan.verdict.passes() {
        return Err(Ignored(format!(
            "release {key} is published; a passing scan of its {} image is not news",
            scan.arch
        )));
    }
    let newest_known = release
        .notices
        .iter()
        .filter_map(|n| match &n.kind {
            NoticeKind::Vulnerable { scan: known }
                if known.arch == scan.arch && known.digest == scan.digest =>
            {
                Some(known.scanned_at)
            }
            _ => None,
        })
        .chain(
            release
                .verdict_for(scan.arch, &scan.digest)
                .map(|r| r.scanned_at),
        )
        .max();
    if newest_known.is_some_and(|at| at > scan.scanned_at) {
        return Err(Ignored(format!(
            "an older scan of {} ({}); a newer one is already recorded",
            scan.digest, scan.arch
        )));
    }
    release.add_notice(NoticeKind::Vulnerable { scan: scan.clone() }, now);
    Ok(())
}
