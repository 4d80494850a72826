//! The release ledger in DynamoDB: one item per release, the whole record as a JSON document
//! beside a few top-level attributes for queries, a `version` for optimistic concurrency and
//! an `expires_at` TTL.

use super::classify;
use crate::domain::{Release, ReleaseKey};
use crate::error::AdapterError;
use crate::ports::{Ledger, SaveError, Stored};
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

/// The partition key attribute (`repository#tag`).
pub const LEDGER_KEY: &str = "pk";
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
        let request = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(LEDGER_KEY, AttributeValue::S(release.key.id()))
            .item(
                "repository",
                AttributeValue::S(release.key.repository.clone()),
            )
            .item("tag", AttributeValue::S(release.key.tag.to_string()))
            .item(
                "phase",
                AttributeValue::S(release.phase().as_str().to_owned()),
            )
            .item(
                "updated_at",
                AttributeValue::N(release.updated_at.to_string()),
            )
            .item(
                "expires_at",
                AttributeValue::N((release.updated_at / 1000 + RETENTION_SECONDS).to_string()),
            )
            .item("version", AttributeValue::N(next.to_string()))
            .item("doc", AttributeValue::S(doc));
        let request = match expected {
            None => request
                .condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", LEDGER_KEY),
            Some(version) => request
                .condition_expression("#v = :expected")
                .expression_attribute_names("#v", "version")
                .expression_attribute_values(":expected", AttributeValue::N(version.to_string())),
        };
        match request.send().await {
            Ok(_) => Ok(next),
            Err(SdkError::ServiceError(e))
                if matches!(e.err(), PutItemError::ConditionalCheckFailedException(_)) =>
            {
                Err(SaveError::Conflict { expected })
            }
            Err(e) => Err(SaveError::Adapter(classify("DynamoDB", "PutItem", e))),
        }
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
                releases.push(decode(item, "Scan")?);
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
