//! A finished scan of an image (or a change of its findings) judged for every release that
//! holds the image: the findings are read once, each release records its verdict.

use super::{Outcome, Pipeline, PipelineError};
use crate::domain::release::ScanRecord;
use crate::domain::{Fact, IgnoreReason};
use crate::gatekeeper::{date_of, judge, judge_current};
use crate::inbound::{ScanObservation, ScanResult};
use crate::ports::{Builds, Clock, EventPublisher, Ledger, Registry};
use tracing::info;

impl<L, B, R, E, C> Pipeline<L, B, R, E, C>
where
    L: Ledger,
    B: Builds,
    R: Registry,
    E: EventPublisher,
    C: Clock,
{
    /// Judges the scanned image for each release its tags name and each release whose
    /// builds or candidate hold it.
    pub async fn judge_scan(&self, scan: &ScanObservation) -> Result<Outcome, PipelineError> {
        // The releases the image's `<tag>-<arch>` tags name, and those whose candidate lists it
        // (found through the digest pointers): a tag can have moved away from the image (a push
        // under it) or never been there (a platform manifest inside a per-arch index).
        let mut located = scan.located.clone();
        let pointed = self
            .ledger
            .find_by_digest(&scan.digest)
            .await
            .map_err(|source| PipelineError::Findings {
                digest: scan.digest.to_string(),
                source,
            })?;
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
            let judged = match &verdict {
                Some(judged) => judged,
                None => {
                    let findings_error = |source| PipelineError::Findings {
                        digest: scan.digest.to_string(),
                        source,
                    };
                    let judged = match &scan.result {
                        ScanResult::Reported { status, counts } => judge(
                            &self.config.gate,
                            &self.registry,
                            &scan.repository,
                            &scan.digest,
                            *status,
                            counts.clone(),
                            &date_of(now),
                        )
                        .await
                        .map_err(findings_error)?,
                        ScanResult::FindingChanged => {
                            match judge_current(
                                &self.config.gate,
                                &self.registry,
                                &scan.repository,
                                &scan.digest,
                                &date_of(now),
                            )
                            .await
                            .map_err(findings_error)?
                            {
                                Some((judged, _)) => judged,
                                None => {
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
            };
            outcomes.push(self.apply_to(known, Fact::ScanEvaluated(record)).await?);
        }
        Ok(Outcome::combine(outcomes))
    }
}
