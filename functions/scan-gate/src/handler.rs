//! ECR "ECR Image Scan" / "Inspector2 Scan" / "Inspector2 Finding" → a verdict on that
//! per-arch image → the release pipeline, which promotes the index when every child passes,
//! records the block, or (after publication) announces the finding.

use archgate::domain::release::ScanRecord;
use archgate::domain::{Fact, IgnoreReason};
use archgate::gatekeeper::{date_of, judge, judge_current};
use archgate::handler_error::HandlerError;
use archgate::inbound::{
    finding_observation, parse_finding_event, parse_scan_event, scan_observation, NoObservation,
    ScanResult, INSPECTOR_FINDING,
};
use archgate::pipeline::{Outcome, Pipeline};
use archgate::ports::{Builds, Clock, EventPublisher, Ledger, Registry};
use tracing::info;

pub async fn handle<L, B, R, E, C>(
    pipeline: &Pipeline<L, B, R, E, C>,
    event: serde_json::Value,
) -> Result<Outcome, HandlerError>
where
    L: Ledger,
    B: Builds,
    R: Registry,
    E: EventPublisher,
    C: Clock,
{
    // Inspector's continuous rescans report each finding as it appears, changes or closes.
    let observed = if event.get("detail-type").and_then(|t| t.as_str()) == Some(INSPECTOR_FINDING) {
        let event = parse_finding_event(event)?;
        (
            event.id.clone(),
            finding_observation(&event, &pipeline.config),
        )
    } else {
        let event = parse_scan_event(event)?;
        (event.id.clone(), scan_observation(&event, &pipeline.config))
    };
    let scan = match observed {
        (_, Ok(scan)) => scan,
        (event_id, Err(NoObservation::Ignored(reason))) => {
            info!(event_id = event_id.as_deref().unwrap_or_default(), %reason, "ignored");
            return Ok(reason.into());
        }
        (_, Err(NoObservation::Invalid(invalid))) => return Err(invalid.into()),
    };
    // The releases the image's `<tag>-<arch>` tags name, and those whose candidate lists it
    // (found through the digest pointers): a tag can have moved away from the image (a push
    // under it) or never been there (a platform manifest inside a per-arch index).
    let mut located = scan.located.clone();
    let pointed = pipeline
        .ledger
        .find_by_digest(&scan.digest)
        .await
        .map_err(|source| HandlerError::Findings {
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
    let now = pipeline.clock.now_millis();
    let mut verdict = None;
    let mut outcomes = Vec::with_capacity(located.len());
    for (key, arch) in located {
        let known = pipeline
            .ledger
            .load(&key)
            .await
            .map_err(|source| HandlerError::Findings {
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
                let findings_error = |source| HandlerError::Findings {
                    digest: scan.digest.to_string(),
                    source,
                };
                let judged = match &scan.result {
                    ScanResult::Reported { status, counts } => judge(
                        &pipeline.config.gate,
                        &pipeline.registry,
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
                            &pipeline.config.gate,
                            &pipeline.registry,
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
        outcomes.push(
            pipeline
                .apply_to(known, Fact::ScanEvaluated(record))
                .await?,
        );
    }
    Ok(Outcome::combine(outcomes))
}
