//! Inspector "Inspector2 Finding": a finding of an image was created, updated or closed.

use super::scan::{located_by_tags, InvalidField, NoObservation, INSPECTOR_SOURCE};
use super::{foreign, other_event, parse, required, MalformedEvent};
use crate::config::Config;
use crate::domain::digest::truncate_for_message;
use crate::domain::release::Scanner;
use crate::domain::scan::{ScanObservation, ScanResult};
use crate::domain::{Digest, IgnoreReason};
use aws_lambda_events::eventbridge::EventBridgeEvent;
use serde::{Deserialize, Serialize};

pub const INSPECTOR_FINDING: &str = "Inspector2 Finding";

/// `detail` of an "Inspector2 Finding" event (enhanced scanning: a finding of an image was
/// created, updated or closed). Only what archgate reads is typed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InspectorFinding {
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub resources: Option<Vec<FindingResource>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FindingResource {
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub details: Option<FindingResourceDetails>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FindingResourceDetails {
    #[serde(default)]
    pub aws_ecr_container_image: Option<EcrImageDetails>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EcrImageDetails {
    #[serde(default)]
    pub repository_name: Option<String>,
    #[serde(default)]
    pub image_hash: Option<String>,
    #[serde(default)]
    pub image_tags: Option<Vec<String>>,
}

pub type FindingEvent = EventBridgeEvent<InspectorFinding>;

pub fn parse_finding_event(value: serde_json::Value) -> Result<FindingEvent, MalformedEvent> {
    parse(value, "Inspector2 Finding")
}

/// Reads an Inspector2 Finding event: the image of archgate's repository whose findings
/// changed, to be judged again; or why there is none.
pub fn finding_observation(
    event: &FindingEvent,
    config: &Config,
) -> Result<ScanObservation, NoObservation> {
    if let Some(ignored) = foreign(event, config) {
        return Err(ignored.into());
    }
    if event.source != INSPECTOR_SOURCE || event.detail_type != INSPECTOR_FINDING {
        return Err(other_event(event, "an Inspector2 Finding").into());
    }
    let image = event
        .detail
        .resources
        .iter()
        .flatten()
        .filter(|r| r.kind.as_deref() == Some("AWS_ECR_CONTAINER_IMAGE"))
        .find_map(|r| r.details.as_ref()?.aws_ecr_container_image.as_ref());
    let Some(image) = image else {
        return Err(IgnoreReason::NotAContainerImage.into());
    };
    let repository = required(image.repository_name.as_deref(), "repositoryName")?;
    let repositories = config.repositories();
    if !repositories.owns(repository) {
        return Err(IgnoreReason::ForeignRepository {
            repository: truncate_for_message(repository),
            expected: repositories.to_string(),
        }
        .into());
    }
    let hash = required(image.image_hash.as_deref(), "imageHash")?;
    let digest = Digest::parse(hash).map_err(|e| InvalidField {
        field: "detail.resources[].details.awsEcrContainerImage.imageHash".into(),
        problem: e.to_string(),
    })?;
    let tags = image.image_tags.clone().unwrap_or_default();
    Ok(ScanObservation {
        repository: repository.to_owned(),
        located: located_by_tags(repository, &tags),
        digest,
        result: ScanResult::FindingChanged,
        scanned_at: event.time.map(|t| t.timestamp_millis()).unwrap_or_default(),
        scanner: Scanner::Inspector,
    })
}
