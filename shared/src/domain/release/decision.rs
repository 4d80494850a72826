//! The decision: one incoming fact on the recorded release.

use super::record::{record_build_status, record_scan, record_upload, BuildReport};
use super::work::{claim_effects, record_result};
use super::*;
use crate::domain::digest::Digest;
use crate::domain::ignore::IgnoreReason;
use crate::domain::notice::{NoticeKind, RejectReason};
use crate::domain::oci::ImagePlatform;
use crate::domain::Millis;
use serde::{Deserialize, Serialize};

/// An incoming fact about a release.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "fact", rename_all = "snake_case")]
pub enum Fact {
    /// A source object was uploaded (S3 Object Created).
    SourceUploaded {
        source: SourceObject,
        manifest_mode: ManifestMode,
    },
    /// An upload whose name can never be a release (a reserved name): it starts nothing and
    /// is announced as `Release Rejected`.
    SourceRefused {
        source: SourceObject,
        reason: RejectReason,
    },
    /// A build reached a status (CodeBuild Build State Change).
    BuildChanged {
        role: BuildRole,
        build_id: String,
        status: BuildStatus,
        /// The image the build pushed (`IMAGE_DIGEST`), when it reported one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        image_digest: Option<Digest>,
        /// That image's platform (`IMAGE_PLATFORM`), when the build reported it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        image_platform: Option<ImagePlatform>,
        /// The CodeBuild image the build ran on, when the event said.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        builder_image: Option<String>,
        /// The release attempt that started the build; `None` for a build that does not say
        /// (one started before builds carried it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        origin: Option<BuildOrigin>,
    },
    /// The gate judged a scan of one per-arch image (ECR / Inspector scan, or a re-evaluation).
    ScanEvaluated(ScanRecord),
    /// The release missed its deadline: it ends Failed with this reason (unless already final).
    Abandoned { reason: String },
    /// Retention expires the release by this rule (see [`ExpiryRule`]).
    Expire { rule: ExpiryRule },
    /// Nothing new: only takes over effects whose claims outlived their lease.
    Nudge,
    /// An effect this invocation performed produced this result.
    Completed(EffectResult),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Nothing to record and nothing to do.
    Ignore(IgnoreReason),
    /// Record `next`; perform `effects` (already claimed in `next.pending`).
    Apply {
        next: Box<Release>,
        effects: Vec<Effect>,
    },
}

/// The release state machine. Pure: same inputs, same decision.
pub fn decide(current: Option<&Release>, key: &ReleaseKey, fact: &Fact, now: Millis) -> Decision {
    let mut release = match (current, fact) {
        (
            None,
            Fact::SourceUploaded {
                source,
                manifest_mode,
            },
        ) => Release::new(key.clone(), source.clone(), *manifest_mode, now),
        (None, Fact::SourceRefused { source, reason }) => {
            let mut release = Release::new(key.clone(), source.clone(), ManifestMode::Native, now);
            release.reserved = Some(reason.clone());
            release
        }
        (None, _) => return Decision::Ignore(IgnoreReason::UnknownRelease { key: key.clone() }),
        (Some(existing), _) => existing.clone(),
    };
    let before = release.clone();

    let recorded: Result<(), IgnoreReason> = match fact {
        Fact::SourceUploaded { source, .. } => match current {
            None => Ok(()),
            Some(_) => record_upload(&mut release, source, now),
        },
        Fact::SourceRefused { source, reason } => {
            release.add_notice(
                NoticeKind::Rejected {
                    source: source.clone(),
                    reason: reason.clone(),
                },
                now,
            );
            Ok(())
        }
        Fact::BuildChanged {
            role,
            build_id,
            status,
            image_digest,
            image_platform,
            builder_image,
            origin,
        } => record_build_status(
            &mut release,
            BuildReport {
                role: *role,
                build_id,
                status: *status,
                image_digest: image_digest.as_ref(),
                image_platform: image_platform.as_ref(),
                origin: origin.as_ref(),
            },
            now,
        )
        .map(|()| {
            let build = release.build_mut(*role);
            if build.builder_image.is_none() && build.build_id.as_deref() == Some(build_id) {
                build.builder_image.clone_from(builder_image);
            }
        }),
        Fact::ScanEvaluated(scan) => record_scan(&mut release, scan, now),
        Fact::Abandoned { reason } => {
            if !release.phase().is_in_flight() {
                // Blocked is a resting state: only releases waiting for builds or scans miss
                // a deadline.
                Err(IgnoreReason::NotInFlight {
                    key: key.clone(),
                    phase: release.phase(),
                })
            } else if release.owes_promotion() {
                // The gate passed: the signing and the promotion run to the end (its PutImage
                // may already have happened), whatever the clock says. Past the deadline the
                // release is announced as stalled, once, and published when the fault clears.
                if release.stalled.is_none() {
                    release.note(now, format!("stalled: {reason}"));
                    release.stalled = Some(Stall {
                        at: now,
                        reason: reason.clone(),
                    });
                }
                Ok(())
            } else {
                if release.abandoned.is_none() {
                    release.note(now, format!("abandoned: {reason}"));
                    release.abandoned = Some(reason.clone());
                }
                Ok(())
            }
        }
        Fact::Expire { rule } => release.expire(rule, now),
        Fact::Nudge => Ok(()),
        Fact::Completed(result) => {
            record_result(&mut release, result, now);
            Ok(())
        }
    };
    if let Err(reason) = recorded {
        // The fact itself changes nothing, but the delivery still takes up effects nobody
        // holds (claims given back after a failure, or expired): work is never lost.
        let mut recovering = before;
        let effects = claim_effects(&mut recovering, now);
        if effects.is_empty() || current.is_none() {
            return Decision::Ignore(reason);
        }
        recovering.updated_at = now;
        return Decision::Apply {
            next: Box::new(recovering),
            effects,
        };
    }

    release.start_queued_attempt(now);
    let effects = claim_effects(&mut release, now);
    if effects.is_empty() && release == before {
        let key = key.clone();
        let reason = match fact {
            Fact::SourceUploaded { .. } => IgnoreReason::DuplicateUpload { key },
            Fact::SourceRefused { .. } => IgnoreReason::DuplicateRefusal { key },
            Fact::BuildChanged { role, status, .. } => IgnoreReason::DuplicateBuildStatus {
                key,
                role: *role,
                status: *status,
            },
            Fact::ScanEvaluated(scan) => IgnoreReason::DuplicateScan {
                arch: scan.arch,
                digest: scan.digest.clone(),
            },
            Fact::Abandoned { .. } => IgnoreReason::AlreadyAbandoned { key },
            Fact::Expire { .. } => IgnoreReason::AlreadyExpired { key },
            Fact::Nudge => IgnoreReason::NothingToTakeOver { key },
            Fact::Completed(result) => IgnoreReason::AlreadyRecorded {
                effect: result.effect(),
            },
        };
        return Decision::Ignore(reason);
    }
    release.updated_at = now;
    Decision::Apply {
        next: Box::new(release),
        effects,
    }
}
