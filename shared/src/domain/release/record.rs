//! How each kind of fact is recorded on a release.

use super::*;
use crate::domain::digest::Digest;
use crate::domain::ignore::IgnoreReason;
use crate::domain::notice::{NoticeKind, RejectReason};
use crate::domain::oci::ImagePlatform;
use crate::domain::Millis;

/// A new upload to an existing release: the next attempt of a failed or blocked release, or
/// a refusal (announced), or a late delivery of something already handled (ignored).
pub(super) fn record_upload(
    release: &mut Release,
    source: &SourceObject,
    now: Millis,
) -> Result<(), IgnoreReason> {
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
        return Err(IgnoreReason::AttemptEnded {
            key,
            revision: source.revision().to_string(),
            attempt: past.attempt,
        });
    }
    if source.is_later_than(&release.source) == Some(false) {
        return Err(IgnoreReason::LateUpload {
            key,
            revision: source.revision().to_string(),
            current: release.source.revision().to_string(),
            attempt: release.attempt,
        });
    }
    match release.phase() {
        Phase::Expired if release.is_tombstone() => {
            let attempt = release.attempt;
            let at = release.expired.as_ref().map_or(0, |e| e.at);
            refuse(release, RejectReason::Expired { attempt, at })
        }
        // An expired attempt was never published: its name is free to build again.
        Phase::Failed | Phase::Blocked | Phase::Expired => {
            if let Some(queued) = &release.queued {
                if source.is_later_than(queued) != Some(true) {
                    return Err(IgnoreReason::LaterUploadQueued {
                        key,
                        queued: queued.revision().to_string(),
                    });
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

/// What a build's state change says about it.
pub(super) struct BuildReport<'a> {
    pub role: BuildRole,
    pub build_id: &'a str,
    pub status: BuildStatus,
    pub image_digest: Option<&'a Digest>,
    pub image_platform: Option<&'a ImagePlatform>,
    /// The attempt that started it, when the build says.
    pub origin: Option<&'a BuildOrigin>,
}

pub(super) fn record_build_status(
    release: &mut Release,
    report: BuildReport<'_>,
    now: Millis,
) -> Result<(), IgnoreReason> {
    let BuildReport {
        role,
        build_id,
        status,
        image_digest,
        image_platform,
        origin,
    } = report;
    let key = release.key.clone();
    if release.phase() == Phase::Rejected {
        return Err(IgnoreReason::BuildOfReservedName {
            key,
            build_id: build_id.to_owned(),
        });
    }
    if role == BuildRole::Manifest && release.manifest_mode == ManifestMode::Native {
        return Err(IgnoreReason::NativeManifestBuild {
            key,
            build_id: build_id.to_owned(),
        });
    }
    // Rule 11: a build is taken only by the attempt that started it. One that does not say
    // which (started before builds carried their attempt) is taken only by the release that
    // recorded its id, never to fill an empty slot: an earlier attempt's late or duplicate
    // build must not enter a later attempt whose own start is not recorded yet.
    match origin {
        Some(origin) if !origin.is_current(release.attempt, &release.source) => {
            return Err(IgnoreReason::BuildOfOtherAttempt {
                key,
                role,
                build_id: build_id.to_owned(),
                attempt: origin.attempt,
                upload: origin.upload.clone().unwrap_or_else(|| "?".to_owned()),
                current: release.attempt,
            })
        }
        None if release.build(role).build_id.as_deref() != Some(build_id) => {
            return Err(IgnoreReason::UnattributedBuild {
                key,
                role,
                build_id: build_id.to_owned(),
            })
        }
        _ => {}
    }
    let build = release.build_mut(role);
    match &build.build_id {
        Some(recorded) if recorded != build_id => {
            return Err(IgnoreReason::OtherBuild {
                key,
                role,
                build_id: build_id.to_owned(),
                recorded: recorded.clone(),
            })
        }
        // The completion can overtake the invocation that started the build.
        None => build.build_id = Some(build_id.to_owned()),
        Some(_) => {}
    }
    if !status.is_final() {
        return Err(IgnoreReason::NotFinal {
            role,
            build_id: build_id.to_owned(),
            status,
        });
    }
    // The image and its platform come from the one report that names the image.
    if status == BuildStatus::Succeeded && build.image_digest.is_none() {
        build.image_digest = image_digest.cloned();
        build.image_platform = image_digest.and(image_platform).cloned();
    }
    if let Some(recorded) = build.final_status() {
        if recorded != status {
            return Err(IgnoreReason::BuildAlreadyEnded {
                role,
                build_id: build_id.to_owned(),
                recorded,
                status,
            });
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

impl Release {
    /// Whether a scan of `digest` as this release's `arch` image is its business: the image
    /// of its current attempt (or, published, of its index), and a release that still judges
    /// scans. Known before the findings are read, so scans of images no live release holds
    /// (a failed or expired release, another attempt's image) cost no read and fail nothing.
    pub fn takes_scan(&self, arch: Arch, digest: &Digest) -> Result<(), IgnoreReason> {
        let key = self.key.clone();
        match self.phase() {
            Phase::Failed => return Err(IgnoreReason::ReleaseFailed { key }),
            Phase::Expired => return Err(IgnoreReason::ReleaseExpired { key }),
            Phase::Rejected => return Err(IgnoreReason::ScanOfReservedName { key }),
            Phase::Published => {
                let is_child = self.candidate.as_ref().is_some_and(|c| {
                    c.children
                        .iter()
                        .any(|child| child.arch == arch && child.digest == *digest)
                });
                if !is_child {
                    return Err(IgnoreReason::NotThePublishedImage {
                        key,
                        arch,
                        digest: digest.clone(),
                    });
                }
                return Ok(());
            }
            _ => {}
        }
        if let Some(candidate) = &self.candidate {
            if *digest == candidate.digest {
                return Err(IgnoreReason::IndexScanned {
                    key,
                    digest: digest.clone(),
                });
            }
            let child = candidate.children.iter().find(|c| c.arch == arch);
            if child.is_some_and(|c| c.digest != *digest) {
                return Err(IgnoreReason::NotTheCandidateImage {
                    key,
                    arch,
                    digest: digest.clone(),
                });
            }
        } else if let Some(pushed) = &self.build(BuildRole::arch(arch)).image_digest {
            if pushed != digest {
                return Err(IgnoreReason::NotThePushedImage {
                    key,
                    arch,
                    digest: digest.clone(),
                    pushed: pushed.clone(),
                });
            }
        }
        Ok(())
    }
}

pub(super) fn record_scan(
    release: &mut Release,
    scan: &ScanRecord,
    now: Millis,
) -> Result<(), IgnoreReason> {
    release.takes_scan(scan.arch, &scan.digest)?;
    if release.phase() == Phase::Published {
        return record_scan_after_publication(release, scan, now);
    }
    if let Some(existing) = release.verdict_for(scan.arch, &scan.digest) {
        // The same scan delivered again judges the same: nothing to record.
        if existing.scanned_at == scan.scanned_at && existing.verdict == scan.verdict {
            return Ok(());
        }
        if existing.recency() > scan.recency() {
            return Err(IgnoreReason::OlderScan {
                arch: scan.arch,
                digest: scan.digest.clone(),
            });
        }
    }
    release
        .scans
        .retain(|s| !(s.arch == scan.arch && s.digest == scan.digest));
    release.scans.push(scan.clone());
    release
        .scans
        .sort_by(|a, b| a.arch.cmp(&b.arch).then(a.digest.cmp(&b.digest)));
    // A verdict signed on other scans no longer tells the truth; once a promotion is
    // claimed, it pushes what it recorded whatever arrives.
    if !release.pending.iter().any(|c| c.effect == Effect::Promote) {
        release.attestations.clear();
    }
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
) -> Result<(), IgnoreReason> {
    let key = release.key.clone();
    if scan.verdict.passes() {
        return Err(IgnoreReason::PassingScanAfterPublication {
            key,
            arch: scan.arch,
        });
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
        return Err(IgnoreReason::OlderScan {
            arch: scan.arch,
            digest: scan.digest.clone(),
        });
    }
    release.add_notice(NoticeKind::Vulnerable { scan: scan.clone() }, now);
    Ok(())
}
