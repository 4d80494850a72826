//! A finished scan of an image (or a change of its findings) judged for every release that
//! holds the image: the findings are read once, each release records its verdict.

use super::gate::{current_verdicts, judge, judge_current};
use super::{EffectError, Outcome, Pipeline, PipelineError};
use crate::domain::gate::date_of;
use crate::domain::gate::Verdict;
use crate::domain::release::ScanRecord;
use crate::domain::scan::{ScanObservation, ScanResult};
use crate::domain::{Arch, Digest, Fact, IgnoreReason, Release};
use crate::error::AdapterError;
use crate::ports::{Clock, Ledger, Ports};
use tracing::info;

impl<P: Ports> Pipeline<P> {
    /// Judges the scanned image for each release its tags name and each release whose
    /// builds or candidate hold it.
    pub async fn judge_scan(&self, scan: &ScanObservation) -> Result<Outcome, PipelineError> {
        // The releases the image's `<tag>-<arch>` tags name, and those whose candidate lists it
        // (found through the digest pointers): a tag can have moved away from the image (a push
        // under it) or never been there (a platform manifest inside a per-arch index).
        let mut located = scan.located.clone();
        let pointed = self
            .ledger
            .find_by_digest(&scan.repository, &scan.digest)
            .await
            .map_err(|source| PipelineError::Findings {
                digest: scan.digest.to_string(),
                source,
            })?;
        // Only this repository's (the pointers are per repository): the same digest in
        // another repository is another image, with its own scans.
        for found in pointed {
            if !located.contains(&found) {
                located.push(found);
            }
        }
        if located.is_empty() {
            let reason = IgnoreReason::NoArchgateImage {
                digest: scan.digest.clone(),
            };
            info!(%reason, "ignored");
            return Ok(Outcome::ignored(reason));
        }
        // Byte-identical builds of several releases are one image: the scan is news for each.
        // The findings are read once, and only when one of them is archgate's; a failure stops
        // the invocation and the redelivery repeats the releases already done, which then change
        // nothing.
        let now = self.clock.now_millis();
        let mut verdict = None;
        let mut policy = None;
        let mut outcomes = Vec::with_capacity(located.len());
        for (key, arch) in located {
            let known = self
                .ledger
                .load(&key)
                .await
                .map_err(|source| PipelineError::Findings {
                    digest: scan.digest.to_string(),
                    source,
                })?;
            let Some(known) = known else {
                outcomes.push(Outcome::ignored(IgnoreReason::UnknownRelease { key }));
                continue;
            };
            // Not its business (failed, expired, another attempt's image): no findings read.
            if let Err(reason) = known.release.takes_scan(arch, &scan.digest) {
                info!(release = %key, %reason, "ignored");
                outcomes.push(Outcome::ignored(reason));
                continue;
            }
            let judged = match &verdict {
                Some(judged) => judged,
                None => {
                    // Read only when there is something to judge, once per invocation.
                    let applied = self.policy_of(&scan.repository).await.map_err(|source| {
                        PipelineError::Judge {
                            repository: scan.repository.clone(),
                            source,
                        }
                    })?;
                    let applied = policy.insert(applied);
                    let findings_error = |source| PipelineError::Findings {
                        digest: scan.digest.to_string(),
                        source,
                    };
                    // The image went since its event was sent (retention, a person): there
                    // is nothing left to judge.
                    let gone = || {
                        let reason = IgnoreReason::ImageGone {
                            digest: scan.digest.clone(),
                        };
                        info!(%reason, "ignored");
                        Outcome::ignored(reason)
                    };
                    let judged = match &scan.result {
                        ScanResult::Reported { status, counts } => match judge(
                            &applied.gate,
                            &self.registry,
                            &scan.repository,
                            &scan.digest,
                            *status,
                            counts.clone(),
                            &date_of(now),
                        )
                        .await
                        {
                            Err(AdapterError::NotFound { .. }) => return Ok(gone()),
                            judged => judged.map_err(findings_error)?,
                        },
                        ScanResult::FindingChanged => {
                            match judge_current(
                                &applied.gate,
                                &self.registry,
                                &scan.repository,
                                &scan.digest,
                                &date_of(now),
                            )
                            .await
                            {
                                Err(AdapterError::NotFound { .. }) => return Ok(gone()),
                                Err(error) => return Err(findings_error(error)),
                                Ok(Some((judged, _))) => judged,
                                Ok(None) => {
                                    let reason = IgnoreReason::NoFinishedScan {
                                        digest: scan.digest.clone(),
                                    };
                                    info!(%reason, "ignored");
                                    return Ok(Outcome::ignored(reason));
                                }
                            }
                        }
                    };
                    verdict.insert(judged)
                }
            };
            info!(release = %key, %arch, digest = %scan.digest, passes = judged.passes(), "scan judged");
            let record = ScanRecord {
                arch,
                digest: scan.digest.clone(),
                verdict: judged.clone(),
                scanned_at: scan.scanned_at,
                evaluated_at: now,
                scanner: Some(scan.scanner),
                policy_version: policy.as_ref().map(|p| p.version),
            };
            // What the verdict leads to (attestation, promotion) applies the same policy.
            let pipeline = match &policy {
                Some(applied) => self.applying(&scan.repository, applied),
                None => self.clone(),
            };
            outcomes.push(
                pipeline
                    .apply_to(known, Fact::ScanEvaluated(record))
                    .await?,
            );
        }
        Ok(Outcome::combine(outcomes))
    }

    /// The candidate's images judged on their current findings under this pipeline's policy:
    /// per image its verdict now (`None` without a finished scan) and, where it is news for
    /// the release, the scan record to apply. `Rejudge::Missing` makes records only for images
    /// without a verdict (the reconciler); `Rejudge::All` supersedes recorded verdicts too (a
    /// re-evaluation after a policy change or a rescan).
    pub async fn rejudge(
        &self,
        release: &Release,
        which: Rejudge,
    ) -> Result<Vec<Rejudged>, EffectError> {
        if release.phase() == crate::domain::Phase::Expired {
            // Its images are gone: nothing to judge, and the tombstone is the answer.
            return Ok(Vec::new());
        }
        let now = self.clock.now_millis();
        let policy = self.policy_of(&release.key.repository).await?;
        let judged = current_verdicts(&policy.gate, &self.registry, release, &date_of(now)).await?;
        Ok(judged
            .into_iter()
            .map(|(arch, digest, found)| {
                let recorded = release.verdict_for(arch, &digest).map(|r| r.scanned_at);
                let verdict = found.as_ref().map(|(v, _)| v.clone());
                let record = match (found, which, recorded) {
                    (None, _, _) | (Some(_), Rejudge::Missing, Some(_)) => None,
                    (Some((verdict, completed_at)), _, recorded) => Some(ScanRecord {
                        arch,
                        digest: digest.clone(),
                        verdict,
                        // A re-evaluation of a recorded scan must supersede its verdict (its
                        // evaluation time breaks the tie when the scan time is unknown).
                        scanned_at: completed_at
                            .unwrap_or(if which == Rejudge::All { 0 } else { now })
                            .max(recorded.unwrap_or(0)),
                        evaluated_at: now,
                        scanner: release.verdict_for(arch, &digest).and_then(|r| r.scanner),
                        policy_version: Some(policy.version),
                    }),
                };
                Rejudged {
                    arch,
                    digest,
                    verdict,
                    record,
                }
            })
            .collect())
    }
}

/// Which images [`Pipeline::rejudge`] makes scan records for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejudge {
    /// Only images the release has no verdict for.
    Missing,
    /// Every scanned image, superseding recorded verdicts.
    All,
}

/// One candidate image judged again.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejudged {
    pub arch: Arch,
    pub digest: Digest,
    /// The verdict now; `None` without a finished scan.
    pub verdict: Option<Verdict>,
    /// The record to apply, when the verdict is news for the release.
    pub record: Option<ScanRecord>,
}
