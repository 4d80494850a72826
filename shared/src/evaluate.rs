//! `archgate release evaluate <tag>`: the current findings judged under the current policy,
//! fed to the release through the same state machine as a scan event. After an allowlist
//! change or a rescan, this is how a blocked release (at any age) gets published.

use crate::domain::gate::Verdict;
use crate::domain::{Arch, Digest, Fact, Phase, ReleaseKey};
use crate::error::AdapterError;
use crate::pipeline::{Outcome, Pipeline, PipelineError, Rejudge};
use crate::ports::Ports;

#[derive(Debug, thiserror::Error)]
pub enum EvaluateError {
    #[error("no release {0} in the ledger")]
    NotFound(String),
    #[error("could not read {release}")]
    Read {
        release: String,
        #[source]
        source: AdapterError,
    },
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
}

/// What a re-evaluation found and did.
#[derive(Debug, Clone)]
pub struct Evaluation {
    pub release: String,
    /// Per child of the candidate: its verdict now, `None` without a finished scan.
    pub verdicts: Vec<(Arch, Digest, Option<Verdict>)>,
    pub outcomes: Vec<Outcome>,
    pub phase: Phase,
}

pub async fn evaluate<P: Ports>(
    pipeline: &Pipeline<P>,
    key: &ReleaseKey,
) -> Result<Evaluation, EvaluateError> {
    let read = |source| EvaluateError::Read {
        release: key.to_string(),
        source,
    };
    let stored = pipeline
        .release(key)
        .await
        .map_err(read)?
        .ok_or_else(|| EvaluateError::NotFound(key.to_string()))?;
    let rejudged = pipeline
        .rejudge(&stored.release, Rejudge::All)
        .await
        .map_err(|source| PipelineError::Judge {
            repository: key.repository.clone(),
            source,
        })?;
    let mut verdicts = Vec::new();
    let mut outcomes = Vec::new();
    for judged in rejudged {
        verdicts.push((judged.arch, judged.digest, judged.verdict));
        if let Some(record) = judged.record {
            outcomes.push(pipeline.apply(key, Fact::ScanEvaluated(record)).await?);
        }
    }
    let after = pipeline
        .release(key)
        .await
        .map_err(read)?
        .ok_or_else(|| EvaluateError::NotFound(key.to_string()))?;
    Ok(Evaluation {
        release: key.to_string(),
        verdicts,
        outcomes,
        phase: after.release.phase(),
    })
}
