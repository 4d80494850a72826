//! Untrusted EventBridge events → facts, one module per event family. Every event is checked
//! against the configuration; anything that is not archgate's gives an explicit
//! [`IgnoreReason`], anything malformed a typed error, never a panic.

mod codebuild;
mod finding;
mod s3;
mod scan;

pub use codebuild::{
    build_change, build_fact, build_id_of, build_origin, build_variables, needs_build_record,
    parse_codebuild_event, AdditionalInformation, BuildChange, BuildEnvironment, BuildRecord,
    BuildVariables, CodeBuildEvent, CodeBuildStateChange, EnvironmentVariable, CODEBUILD_SOURCE,
    CODEBUILD_STATE_CHANGE,
};
pub use finding::{
    finding_observation, parse_finding_event, EcrImageDetails, FindingEvent, FindingResource,
    FindingResourceDetails, InspectorFinding, INSPECTOR_FINDING,
};
pub use s3::{
    parse_s3_event, upload_fact, S3Bucket, S3Event, S3Object, S3ObjectCreated, S3_OBJECT_CREATED,
    S3_SOURCE,
};
pub use scan::{
    parse_scan_event, scan_observation, ImageScan, InvalidField, NoObservation, ScanEvent,
    ECR_IMAGE_SCAN, ECR_SOURCE, INSPECTOR_SCAN, INSPECTOR_SOURCE, MAX_SCAN_TAGS,
};

use crate::config::Config;
use crate::domain::digest::truncate_for_message;
use crate::domain::IgnoreReason;
use aws_lambda_events::eventbridge::EventBridgeEvent;
use serde::Serialize;

/// Upper bound on any string taken from an event before it is used (keys are ≤ 1024 bytes
/// in S3; anything longer is not a real event).
const MAX_FIELD_LEN: usize = 2048;

#[derive(Debug, thiserror::Error)]
#[error("event is not a well-formed {expected} event")]
pub struct MalformedEvent {
    pub expected: &'static str,
    #[source]
    pub source: serde_json::Error,
}

/// Parses an event of the family `expected` names.
fn parse<T: serde::de::DeserializeOwned>(
    value: serde_json::Value,
    expected: &'static str,
) -> Result<T, MalformedEvent> {
    serde_json::from_value(value).map_err(|source| MalformedEvent { expected, source })
}

/// EventBridge's own events: the schedules that run the reconciler and retention.
pub const SCHEDULE_SOURCE: &str = "aws.events";
pub const SCHEDULED_EVENT: &str = "Scheduled Event";

/// Whether an event is one of EventBridge's scheduled events.
pub fn is_scheduled(event: &serde_json::Value) -> bool {
    event.get("source").and_then(serde_json::Value::as_str) == Some(SCHEDULE_SOURCE)
        && event.get("detail-type").and_then(serde_json::Value::as_str) == Some(SCHEDULED_EVENT)
}

/// Events of another account or region than the deployment's are not archgate's to act on.
pub fn foreign<T>(event: &EventBridgeEvent<T>, config: &Config) -> Option<IgnoreReason>
where
    T: Serialize + serde::de::DeserializeOwned,
{
    let mismatch = |expected: &Option<String>, got: &Option<String>| match (expected, got) {
        (Some(expected), Some(got)) => expected != got,
        (Some(_), None) => true,
        (None, _) => false,
    };
    let shown =
        |value: &Option<String>| truncate_for_message(value.as_deref().unwrap_or("<missing>"));
    if mismatch(&config.account_id, &event.account) {
        return Some(IgnoreReason::ForeignAccount {
            account: shown(&event.account),
        });
    }
    if mismatch(&config.region, &event.region) {
        return Some(IgnoreReason::ForeignRegion {
            region: shown(&event.region),
        });
    }
    None
}

/// The event's source and detail-type are not those of the family the function takes.
fn other_event<T>(event: &EventBridgeEvent<T>, expected: &'static str) -> IgnoreReason
where
    T: Serialize + serde::de::DeserializeOwned,
{
    IgnoreReason::OtherEvent {
        expected,
        event_source: truncate_for_message(&event.source),
        detail_type: truncate_for_message(&event.detail_type),
    }
}

fn required<'a>(value: Option<&'a str>, field: &'static str) -> Result<&'a str, IgnoreReason> {
    match value {
        Some("") => Err(IgnoreReason::EmptyField { field }),
        Some(v) if v.len() > MAX_FIELD_LEN => Err(IgnoreReason::LongField {
            field,
            length: v.len(),
        }),
        Some(v) => Ok(v),
        None => Err(IgnoreReason::MissingField { field }),
    }
}

fn optional(value: Option<&str>, field: &'static str) -> Result<Option<String>, IgnoreReason> {
    match value {
        None | Some("") => Ok(None),
        Some(v) => required(Some(v), field).map(|v| Some(v.to_owned())),
    }
}
