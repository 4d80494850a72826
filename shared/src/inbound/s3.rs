//! S3 "Object Created": an upload of a build context starts (or is refused as) a release.

use super::{foreign, optional, other_event, parse, required, MalformedEvent};
use crate::config::Config;
use crate::domain::digest::truncate_for_message;
use crate::domain::tag::ReleaseTag;
use crate::domain::{Fact, IgnoreReason, ReleaseKey, SourceObject};
use aws_lambda_events::eventbridge::EventBridgeEvent;
use serde::{Deserialize, Serialize};

pub const S3_SOURCE: &str = "aws.s3";
pub const S3_OBJECT_CREATED: &str = "Object Created";

/// `detail` of an S3 "Object Created" event (EventBridge notifications).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct S3ObjectCreated {
    #[serde(default)]
    pub bucket: Option<S3Bucket>,
    #[serde(default)]
    pub object: Option<S3Object>,
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct S3Bucket {
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct S3Object {
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(default)]
    pub etag: Option<String>,
    #[serde(default)]
    pub version_id: Option<String>,
    #[serde(default)]
    pub sequencer: Option<String>,
}

pub type S3Event = EventBridgeEvent<S3ObjectCreated>;

pub fn parse_s3_event(value: serde_json::Value) -> Result<S3Event, MalformedEvent> {
    parse(value, "S3 Object Created")
}

/// The release an upload starts, or why it starts none.
pub fn upload_fact(event: &S3Event, config: &Config) -> Result<(ReleaseKey, Fact), IgnoreReason> {
    if let Some(ignored) = foreign(event, config) {
        return Err(ignored);
    }
    if event.source != S3_SOURCE || event.detail_type != S3_OBJECT_CREATED {
        return Err(other_event(event, "an S3 Object Created"));
    }
    let detail = &event.detail;
    let bucket = required(
        detail.bucket.as_ref().and_then(|b| b.name.as_deref()),
        "detail.bucket.name",
    )?;
    if bucket != config.source_bucket {
        return Err(IgnoreReason::ForeignBucket {
            bucket: truncate_for_message(bucket),
            expected: config.source_bucket.clone(),
        });
    }
    let object = detail.object.as_ref();
    let key = required(object.and_then(|o| o.key.as_deref()), "detail.object.key")?;
    let tag = ReleaseTag::from_object_key(key, &config.source_prefix).map_err(|e| {
        IgnoreReason::BadObjectKey {
            problem: e.to_string(),
        }
    })?;
    let sequencer = optional(
        object.and_then(|o| o.sequencer.as_deref()),
        "detail.object.sequencer",
    )?;
    if let Some(sequencer) = &sequencer {
        if !sequencer.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(IgnoreReason::NotHexadecimal {
                field: "detail.object.sequencer",
                value: truncate_for_message(sequencer),
            });
        }
    }
    let source = SourceObject {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        version_id: optional(
            object.and_then(|o| o.version_id.as_deref()),
            "detail.object.version-id",
        )?,
        etag: optional(object.and_then(|o| o.etag.as_deref()), "detail.object.etag")?,
        size: object.and_then(|o| o.size),
        uploaded_at: event.time.map(|t| t.timestamp_millis()),
        sequencer,
    };
    // The key's path below the prefix names the repository (with a namespace).
    let rest = &key[config.source_prefix.len()..];
    let repositories = config.repositories();
    let repository = match repositories.of_key(rest) {
        Ok(repository) => repository,
        Err(refusal) => {
            return Err(IgnoreReason::RefusedRepository {
                key: truncate_for_message(key),
                refusal,
                tag,
                upload: Box::new(source),
            })
        }
    };
    let key = ReleaseKey::new(repository.to_owned(), tag);
    // A reserved name starts nothing; the refusal is recorded and announced.
    let fact = match key.tag.reserved(&config.moving_tags) {
        Some(reason) => Fact::SourceRefused { source, reason },
        None => Fact::SourceUploaded {
            source,
            manifest_mode: config.manifest_mode,
        },
    };
    Ok((key, fact))
}
