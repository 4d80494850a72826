//! The release ledger in DynamoDB: one item per release, the whole record as a JSON document
//! beside a few top-level attributes for queries, a `version` for optimistic concurrency and
//! an `expires_at` TTL.

use super::classify;
use crate::domain::{Arch, Digest, Release, ReleaseKey, ReleaseTag};
use crate::error::AdapterError;
use crate::ports::{Clock, Ledger, SaveError, Stored};
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use std::collections::HashMap;

/// The partition key attribute (`repository#tag`).
pub const LEDGER_KEY: &str = "pk";
/// Partition-key prefix of the items that map a per-arch image digest to its release.
pub const DIGEST_POINTER: &str = "digest#";
/// Releases are kept for audit this long after their last change.
const RETENTION_SECONDS: i64 = 180 * 24 * 3600;

#[derive(Clone, Debug)]
pub struct DynamoLedger {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoLedger {
    pub fn new(client: aws_sdk_dynamodb::Client, table: &str) -> Self {
        DynamoLedger {
            client,
            table: table.to_owned(),
        }
    }
}

fn unexpected(operation: &'static str, reason: String) -> AdapterError {
    AdapterError::Unexpected {
        service: "DynamoDB",
        operation,
        reason,
    }
}

fn decode(
    item: &HashMap<String, AttributeValue>,
    operation: &'static str,
) -> Result<Stored, AdapterError> {
    let doc = item
        .get("doc")
        .and_then(|v| v.as_s().ok())
        .ok_or_else(|| unexpected(operation, "ledger item without a `doc` string".into()))?;
    let version = item
        .get("version")
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse::<u64>().ok())
        .ok_or_else(|| unexpected(operation, "ledger item without a numeric `version`".into()))?;
    let release: Release = serde_json::from_str(doc)
        .map_err(|e| unexpected(operation, format!("ledger item does not parse: {e}")))?;
    Ok(Stored { release, version })
}

impl Ledger for DynamoLedger {
    async fn load(&self, key: &ReleaseKey) -> Result<Option<Stored>, AdapterError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(LEDGER_KEY, AttributeValue::S(key.id()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("DynamoDB", "GetItem", e))?;
        output
            .item
            .as_ref()
            .map(|item| decode(item, "GetItem"))
            .transpose()
    }

    async fn save(&self, release: &Release, expected: Option<u64>) -> Result<u64, SaveError> {
        let next = expected.map_or(1, |v| v + 1);
        let doc = serde_json::to_string(release).map_err(|e| {
            SaveError::Adapter(unexpected(
                "PutItem",
                format!("release does not serialise: {e}"),
            ))
        })?;
        let expires_at = release.updated_at / 1000 + RETENTION_SECONDS;
        let item: HashMap<String, AttributeValue> = [
            (LEDGER_KEY, AttributeValue::S(release.key.id())),
            (
                "repository",
                AttributeValue::S(release.key.repository.clone()),
            ),
            ("tag", AttributeValue::S(release.key.tag.to_string())),
            (
                "phase",
                AttributeValue::S(release.phase().as_str().to_owned()),
            ),
            (
                "updated_at",
                AttributeValue::N(release.updated_at.to_string()),
            ),
            ("expires_at", AttributeValue::N(expires_at.to_string())),
            ("version", AttributeValue::N(next.to_string())),
            ("doc", AttributeValue::S(doc)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let (condition, names, values) = match expected {
            None => (
                "attribute_not_exists(#pk)",
                HashMap::from([("#pk".to_owned(), LEDGER_KEY.to_owned())]),
                None,
            ),
            Some(version) => (
                "#v = :expected",
                HashMap::from([("#v".to_owned(), "version".to_owned())]),
                Some(HashMap::from([(
                    ":expected".to_owned(),
                    AttributeValue::N(version.to_string()),
                )])),
            ),
        };
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(values)
            .send()
            .await;
        match result {
            Ok(_) => Ok(next),
            Err(SdkError::ServiceError(e))
                if matches!(e.err(), PutItemError::ConditionalCheckFailedException(_)) =>
            {
                Err(SaveError::Conflict { expected })
            }
            Err(e) => Err(SaveError::Adapter(classify("DynamoDB", "PutItem", e))),
        }
    }

    async fn link_digests(
        &self,
        key: &ReleaseKey,
        links: &[(Digest, Arch)],
    ) -> Result<(), AdapterError> {
        // Pointers `digest#<digest>` let a scan of an untagged image find its release. They
        // are plain puts of derived data: writing them twice is harmless.
        let expires_at = crate::ports::SystemClock.now_millis() / 1000 + RETENTION_SECONDS;
        let mut writes = Vec::with_capacity(links.len());
        for (digest, arch) in links {
            let pointer = HashMap::from([
                (
                    LEDGER_KEY.to_owned(),
                    AttributeValue::S(format!("{DIGEST_POINTER}{digest}")),
                ),
                ("release".to_owned(), AttributeValue::S(key.id())),
                (
                    "arch".to_owned(),
                    AttributeValue::S(arch.as_str().to_owned()),
                ),
                (
                    "expires_at".to_owned(),
                    AttributeValue::N(expires_at.to_string()),
                ),
            ]);
            writes.push(
                WriteRequest::builder()
                    .put_request(
                        PutRequest::builder()
                            .set_item(Some(pointer))
                            .build()
                            .map_err(|e| unexpected("BatchWriteItem", e.to_string()))?,
                    )
                    .build(),
            );
        }
        let mut pending = HashMap::from([(self.table.clone(), writes)]);
        // Unprocessed items are retried a few times; a pointer that still does not land only
        // means such a scan waits for the reconciler.
        for _ in 0..4 {
            let output = self
                .client
                .batch_write_item()
                .set_request_items(Some(pending))
                .send()
                .await
                .map_err(|e| classify("DynamoDB", "BatchWriteItem", e))?;
            match output
                .unprocessed_items
                .filter(|u| u.values().any(|w| !w.is_empty()))
            {
                Some(unprocessed) => pending = unprocessed,
                None => return Ok(()),
            }
        }
        Err(unexpected(
            "BatchWriteItem",
            "digest pointers stayed unprocessed".to_owned(),
        ))
    }

    async fn find_by_digest(
        &self,
        digest: &Digest,
    ) -> Result<Option<(ReleaseKey, Arch)>, AdapterError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(
                LEDGER_KEY,
                AttributeValue::S(format!("{DIGEST_POINTER}{digest}")),
            )
            .send()
            .await
            .map_err(|e| classify("DynamoDB", "GetItem", e))?;
        let Some(item) = output.item else {
            return Ok(None);
        };
        let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
        let (Some(release), Some(arch)) = (text("release"), text("arch")) else {
            return Err(unexpected(
                "GetItem",
                format!("digest pointer {digest} is malformed"),
            ));
        };
        let arch = Arch::parse(&arch).ok_or_else(|| {
            unexpected(
                "GetItem",
                format!("digest pointer {digest} names arch {arch:?}"),
            )
        })?;
        let (repository, tag) = release.rsplit_once('#').ok_or_else(|| {
            unexpected(
                "GetItem",
                format!("digest pointer {digest} names release {release:?}"),
            )
        })?;
        let tag = ReleaseTag::parse(tag).map_err(|e| unexpected("GetItem", e.to_string()))?;
        Ok(Some((ReleaseKey::new(repository, tag), arch)))
    }

    async fn list(&self, limit: usize) -> Result<Vec<Stored>, AdapterError> {
        let mut releases = Vec::new();
        let mut start = None;
        loop {
            let output = self
                .client
                .scan()
                .table_name(&self.table)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| classify("DynamoDB", "Scan", e))?;
            for item in output.items() {
                let pointer = item
                    .get(LEDGER_KEY)
                    .and_then(|v| v.as_s().ok())
                    .is_some_and(|pk| pk.starts_with(DIGEST_POINTER));
                if !pointer {
                    releases.push(decode(item, "Scan")?);
                }
            }
            start = output.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        releases.sort_by_key(|s| std::cmp::Reverse(s.release.updated_at));
        releases.truncate(limit);
        Ok(releases)
    }
}
