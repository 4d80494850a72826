//! The release as the ledger records it, and what can be read off it.

use super::*;
use crate::domain::attestation::Attestation;
use crate::domain::digest::Digest;
use crate::domain::gate::Verdict;
use crate::domain::notice::{
    Notice, NoticeKind, PastAttempt, RejectReason, MAX_HISTORY, MAX_NOTICES,
};
use crate::domain::Millis;
use serde::{Deserialize, Serialize};

/// One release as the ledger records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    pub key: ReleaseKey,
    pub source: SourceObject,
    pub manifest_mode: ManifestMode,
    pub amd64: BuildRecord,
    pub arm64: BuildRecord,
    #[serde(default)]
    pub manifest: BuildRecord,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate: Option<Candidate>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scans: Vec<ScanRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published: Option<Publication>,
    /// Set when the release missed its deadline (builds or scans that never finished).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abandoned: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub emitted: Vec<EventKind>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<Claim>,
    pub created_at: Millis,
    pub updated_at: Millis,
    #[serde(default)]
    pub timeline: Vec<TimelineEntry>,
    /// 1 for the first upload; a new version of the same object key starts the next attempt
    /// of a failed or blocked release.
    #[serde(default = "first_attempt")]
    pub attempt: u32,
    /// When the current attempt started (`created_at` for the first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt_started_at: Option<Millis>,
    /// Earlier attempts, newest last, at most [`MAX_HISTORY`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<PastAttempt>,
    /// A new upload waiting for the ended attempt to finish its effects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queued: Option<SourceObject>,
    /// Set when the name is reserved: no attempt ever starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserved: Option<RejectReason>,
    /// Refused uploads and findings after publication, at most [`MAX_NOTICES`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notices: Vec<Notice>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub next_notice: u32,
    /// Set when retention expired the release (see [`Expiry`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expired: Option<Expiry>,
    /// The provenance and the gate's verdict, signed before promotion; the promotion pushes
    /// exactly these envelopes as referrers of the index.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attestations: Vec<Attestation>,
    /// The owed effects that keep failing, each with its last error (rule 12: nothing waits
    /// without a word).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub troubles: Vec<Trouble>,
    /// Set when the gate passed and the signing or promotion kept failing past the deadline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stalled: Option<Stall>,
}

fn first_attempt() -> u32 {
    1
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Release {
    pub fn new(key: ReleaseKey, source: SourceObject, mode: ManifestMode, now: Millis) -> Self {
        let mut release = Release {
            key,
            source,
            manifest_mode: mode,
            amd64: BuildRecord::default(),
            arm64: BuildRecord::default(),
            manifest: BuildRecord::default(),
            candidate: None,
            scans: Vec::new(),
            published: None,
            abandoned: None,
            emitted: Vec::new(),
            pending: Vec::new(),
            created_at: now,
            updated_at: now,
            timeline: Vec::new(),
            attempt: 1,
            attempt_started_at: None,
            history: Vec::new(),
            queued: None,
            reserved: None,
            notices: Vec::new(),
            next_notice: 0,
            expired: None,
            attestations: Vec::new(),
            troubles: Vec::new(),
            stalled: None,
        };
        release.note(
            now,
            format!(
                "upload s3://{}/{} received",
                release.source.bucket, release.source.key
            ),
        );
        release
    }

    pub fn build(&self, role: BuildRole) -> &BuildRecord {
        match role {
            BuildRole::Amd64 => &self.amd64,
            BuildRole::Arm64 => &self.arm64,
            BuildRole::Manifest => &self.manifest,
        }
    }

    pub(super) fn build_mut(&mut self, role: BuildRole) -> &mut BuildRecord {
        match role {
            BuildRole::Amd64 => &mut self.amd64,
            BuildRole::Arm64 => &mut self.arm64,
            BuildRole::Manifest => &mut self.manifest,
        }
    }

    /// The first failure, if any build failed: the role and its status.
    pub fn failure(&self) -> Option<(BuildRole, BuildStatus)> {
        [BuildRole::Amd64, BuildRole::Arm64, BuildRole::Manifest]
            .into_iter()
            .find_map(|role| {
                self.build(role)
                    .final_status()
                    .filter(|s| s.is_failure())
                    .map(|s| (role, s))
            })
    }

    pub fn failure_reason(&self) -> Option<String> {
        if let Some(reason) = &self.abandoned {
            return Some(reason.clone());
        }
        self.failure().map(|(role, status)| {
            let id = self
                .build(role)
                .build_id
                .as_deref()
                .unwrap_or("unknown build");
            format!("{role} build {id} ended {}", status.as_str())
        })
    }

    pub fn phase(&self) -> Phase {
        if self.reserved.is_some() {
            Phase::Rejected
        } else if self.expired.is_some() {
            Phase::Expired
        } else if self.failure().is_some() || (self.abandoned.is_some() && self.published.is_none())
        {
            Phase::Failed
        } else if self.published.is_some() {
            Phase::Published
        } else if self.candidate.is_some() {
            match self.gate() {
                GateState::Blocked => Phase::Blocked,
                _ => Phase::CandidateReady,
            }
        } else if self.both_arches_succeeded() {
            Phase::Assembling
        } else {
            Phase::Building
        }
    }

    /// The current verdict on an arch's image: the newest record for that digest.
    pub fn verdict_for(&self, arch: Arch, digest: &Digest) -> Option<&ScanRecord> {
        self.scans
            .iter()
            .filter(|s| s.arch == arch && &s.digest == digest)
            .max_by_key(|s| s.recency())
    }

    /// The gate over the candidate's children: blocked as soon as one child is, passed
    /// when every child has a passing verdict.
    pub fn gate(&self) -> GateState {
        let Some(candidate) = &self.candidate else {
            return GateState::Waiting;
        };
        let verdicts: Vec<Option<&ScanRecord>> = candidate
            .children
            .iter()
            .map(|child| self.verdict_for(child.arch, &child.digest))
            .collect();
        if verdicts.iter().flatten().any(|s| !s.verdict.passes()) {
            GateState::Blocked
        } else if verdicts.iter().all(Option::is_some) {
            GateState::Passed
        } else {
            GateState::Waiting
        }
    }

    /// The records of the blocking verdicts, for events and status.
    pub fn blocking_scans(&self) -> Vec<&ScanRecord> {
        let Some(candidate) = &self.candidate else {
            return Vec::new();
        };
        candidate
            .children
            .iter()
            .filter_map(|child| self.verdict_for(child.arch, &child.digest))
            .filter(|s| !s.verdict.passes())
            .collect()
    }

    /// Bounds the scans kept before the candidate exists: once a build reported its image,
    /// only that image's scans stay; before, the newest [`MAX_EARLY_SCANS`] per arch (pushes
    /// under the arch tag by others must not grow the record).
    pub(super) fn keep_scans_of_pushed_images(&mut self) {
        if self.candidate.is_some() {
            return;
        }
        for arch in Arch::ALL {
            let pushed = self.build(BuildRole::arch(arch)).image_digest.clone();
            if let Some(pushed) = pushed {
                self.scans.retain(|s| s.arch != arch || s.digest == pushed);
                continue;
            }
            let mut early: Vec<(Millis, Millis)> = self
                .scans
                .iter()
                .filter(|s| s.arch == arch)
                .map(ScanRecord::recency)
                .collect();
            if early.len() > MAX_EARLY_SCANS {
                early.sort_unstable();
                let cut = early[early.len() - MAX_EARLY_SCANS];
                self.scans.retain(|s| s.arch != arch || s.recency() >= cut);
            }
        }
    }

    pub(super) fn both_arches_succeeded(&self) -> bool {
        Arch::ALL
            .iter()
            .all(|a| self.build(BuildRole::arch(*a)).status == Some(BuildStatus::Succeeded))
    }

    /// Adds to the timeline, which keeps the newest [`MAX_TIMELINE`] entries.
    pub(super) fn note(&mut self, at: Millis, what: String) {
        if self.timeline.len() >= MAX_TIMELINE {
            self.timeline.remove(0);
        }
        self.timeline.push(TimelineEntry { at, what });
    }

    /// When the ledger may forget this release (seconds since the epoch, DynamoDB's TTL):
    /// never once an attempt was published, else [`UNPUBLISHED_RETENTION_SECONDS`] after its
    /// last change.
    pub fn expires_at(&self) -> Option<i64> {
        self.published.is_none().then(|| {
            self.updated_at
                .div_euclid(1000)
                .saturating_add(UNPUBLISHED_RETENTION_SECONDS)
        })
    }

    /// The attempt to tell people and events: 0 for a name refused from the start (a
    /// reserved name never starts an attempt), the current attempt otherwise.
    pub fn attempt_started(&self) -> u32 {
        if self.reserved.is_some() {
            0
        } else {
            self.attempt
        }
    }

    /// When the current attempt started.
    pub fn started_at(&self) -> Millis {
        self.attempt_started_at.unwrap_or(self.created_at)
    }

    /// Orders releases by upload for the moving tags: S3's time of the upload (the attempt's
    /// start when the event carried none), then the tag, so the order is total.
    pub fn upload_order(&self) -> (Millis, &str) {
        (
            self.source.uploaded_at.unwrap_or_else(|| self.started_at()),
            self.key.tag.as_str(),
        )
    }

    /// Why the gate blocks the release, one clause per blocking child.
    pub fn blocked_reason(&self) -> String {
        self.blocking_scans()
            .iter()
            .filter_map(|s| match &s.verdict {
                Verdict::Block { rule, .. } => {
                    Some(format!("{} image {}: {rule}", s.arch, s.digest))
                }
                Verdict::Pass { .. } => None,
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Records a notice unless the same news is already recorded. Keeps the unannounced
    /// notices and the newest announced ones, at most [`MAX_NOTICES`] in all.
    pub(super) fn add_notice(&mut self, kind: NoticeKind, now: Millis) -> bool {
        let notice = Notice {
            seq: self.next_notice,
            at: now,
            kind,
            announced: false,
        };
        let identity = notice.identity();
        if self.notices.iter().any(|n| n.identity() == identity) {
            return false;
        }
        self.note(
            now,
            match &notice.kind {
                NoticeKind::Rejected { source, reason } => format!(
                    "upload s3://{}/{} version {} refused: {reason}",
                    source.bucket,
                    source.key,
                    source.revision()
                ),
                NoticeKind::Vulnerable { scan } => format!(
                    "{} image {} is vulnerable after publication",
                    scan.arch, scan.digest
                ),
            },
        );
        self.next_notice = self.next_notice.saturating_add(1);
        self.notices.push(notice);
        while self.notices.len() > MAX_NOTICES {
            // The oldest announced notice goes first; only a storm of unannounced ones (the
            // event bus failing for long) drops one that was never announced.
            let at = self.notices.iter().position(|n| n.announced).unwrap_or(0);
            self.notices.remove(at);
        }
        true
    }

    /// Starts the queued upload as the next attempt once the ended attempt has nothing left
    /// to do: its events announced, its builds stopped, no claim outstanding.
    pub(super) fn start_queued_attempt(&mut self, now: Millis) {
        let outcome = self.phase();
        if self.queued.is_none()
            || !matches!(outcome, Phase::Failed | Phase::Blocked | Phase::Expired)
            || !self.pending.is_empty()
            || !self.required_effects().is_empty()
        {
            return;
        }
        let Some(source) = self.queued.take() else {
            return;
        };
        let reason = match outcome {
            Phase::Failed => self.failure_reason(),
            Phase::Expired => self
                .expired
                .as_ref()
                .map(|e| format!("expired: {}", e.rule)),
            _ => Some(self.blocked_reason()),
        };
        self.history.push(PastAttempt {
            attempt: self.attempt,
            revision: self.source.revision().to_owned(),
            sequencer: self.source.sequencer.clone(),
            outcome,
            reason,
            started_at: self.started_at(),
            ended_at: self.updated_at,
        });
        if self.history.len() > MAX_HISTORY {
            self.history.remove(0);
        }
        self.attempt = self.attempt.saturating_add(1);
        self.source = source;
        self.amd64 = BuildRecord::default();
        self.arm64 = BuildRecord::default();
        self.manifest = BuildRecord::default();
        self.candidate = None;
        self.scans.clear();
        self.published = None;
        self.abandoned = None;
        self.expired = None;
        self.attestations.clear();
        self.troubles.clear();
        self.stalled = None;
        self.emitted.clear();
        self.attempt_started_at = Some(now);
        self.note(
            now,
            format!(
                "attempt {} started from upload s3://{}/{} version {}",
                self.attempt,
                self.source.bucket,
                self.source.key,
                self.source.revision()
            ),
        );
    }
}
