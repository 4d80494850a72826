//! The release ledger in DynamoDB: one item per release, the whole record as a JSON document
//! beside a few top-level attributes for queries, a `version` for optimistic concurrency and
//! an `expires_at` TTL while no attempt of the release was published. Beside the releases:
//! digest pointers (which releases of a repository hold a per-arch image: `digest#<digest>`
//! for the default repository, `digest#<repository>@<digest>` for the others), moving-tag items
//! (`tag#<repository>#<tag>`: which release a moving tag names, and its lock), repositories'
//! policies (`policy:<repository>`) and where the next retention run starts
//! (`retention:resume`).

mod items;

pub use items::{
    item_kind, moving_tag_id, pointer_id, policy_id, ItemKind, LEDGER_KEY, MAX_POINTER_RELEASES,
};

use super::classify;
use crate::domain::policy::{PolicyRead, PolicyRecord};
use crate::domain::retention::mentioned_digests;
use crate::domain::{Arch, Digest, Millis, Release, ReleaseKey};
use crate::error::AdapterError;
use crate::operation::{DYNAMODB_GET_ITEM, DYNAMODB_PUT_ITEM, DYNAMODB_SCAN, DYNAMODB_UPDATE_ITEM};
use crate::ports::{
    Ledger, Listing, MovingTagHolder, MovingTagLock, SaveError, Stored, UnreadableRecord,
};
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::operation::update_item::{UpdateItemError, UpdateItemOutput};
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use items::{
    decode, parse_pointer_entry, pointer_entry, truncate, unexpected, POLICY, RETENTION_RESUME,
};
use std::collections::HashMap;

#[derive(Clone, Debug)]
pub struct DynamoLedger {
    client: aws_sdk_dynamodb::Client,
    table: String,
    /// The deployment's default repository, whose digest pointers keep their first key.
    default_repository: Option<String>,
}

impl DynamoLedger {
    pub fn new(client: aws_sdk_dynamodb::Client, table: &str) -> Self {
        DynamoLedger {
            client,
            table: table.to_owned(),
            default_repository: None,
        }
    }

    /// The ledger of a deployment whose default repository is `repository`: its digest
    /// pointers keep the key they always had, the namespace's get their own (the pipeline's
    /// ledger; a ledger without one keys every repository's pointers the first way).
    pub fn with_default_repository(mut self, repository: &str) -> Self {
        self.default_repository = Some(repository.to_owned());
        self
    }

    fn pointer_id(&self, repository: &str, digest: &Digest) -> String {
        pointer_id(self.default_repository.as_deref(), repository, digest)
    }

    /// An UpdateItem of a moving tag's item; the caller adds the expressions.
    fn moving_tag_update(&self, repository: &str, tag: &str) -> UpdateItemFluentBuilder {
        self.client.update_item().table_name(&self.table).key(
            LEDGER_KEY,
            AttributeValue::S(moving_tag_id(repository, tag)),
        )
    }

    /// The item a partition key names, read consistently (the readers decide on what the
    /// last write left).
    async fn consistent_item(
        &self,
        id: String,
    ) -> Result<Option<HashMap<String, AttributeValue>>, AdapterError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(LEDGER_KEY, AttributeValue::S(id))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify(DYNAMODB_GET_ITEM, e))?;
        Ok(output.item)
    }

    /// Puts a whole item if its stored `version` is still `expected` (`None`: the item must
    /// not exist yet).
    async fn put_versioned(
        &self,
        item: HashMap<String, AttributeValue>,
        expected: Option<u64>,
    ) -> Result<(), SaveError> {
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
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e))
                if matches!(e.err(), PutItemError::ConditionalCheckFailedException(_)) =>
            {
                Err(SaveError::Conflict { expected })
            }
            Err(e) => Err(SaveError::Adapter(classify(DYNAMODB_PUT_ITEM, e))),
        }
    }
}

/// Sends a conditional UpdateItem: its output, or `None` when the condition did not hold.
async fn conditional_update(
    update: UpdateItemFluentBuilder,
) -> Result<Option<UpdateItemOutput>, AdapterError> {
    match update.send().await {
        Ok(output) => Ok(Some(output)),
        Err(SdkError::ServiceError(e))
            if matches!(e.err(), UpdateItemError::ConditionalCheckFailedException(_)) =>
        {
            Ok(None)
        }
        Err(e) => Err(classify(DYNAMODB_UPDATE_ITEM, e)),
    }
}

/// A policy item's record, or why it cannot be applied.
fn decode_policy(repository: &str, item: &HashMap<String, AttributeValue>) -> PolicyRead {
    let version = item
        .get("version")
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok());
    let unreadable = |reason: String| PolicyRead::Unreadable { reason, version };
    let Some(doc) = item.get("doc").and_then(|v| v.as_s().ok()) else {
        return unreadable("the item has no `doc`".to_owned());
    };
    match serde_json::from_str::<PolicyRecord>(doc) {
        Ok(record) if record.repository == repository && Some(record.version) == version => {
            PolicyRead::Found(record)
        }
        Ok(record) if record.repository != repository => unreadable(format!(
            "it names repository {}",
            truncate(&record.repository)
        )),
        Ok(record) => unreadable(format!(
            "its document is version {}, the item {version:?}",
            record.version
        )),
        Err(e) => unreadable(e.to_string()),
    }
}

/// A moving tag's holder as its item stores it.
fn holder_json(holder: &MovingTagHolder) -> Result<String, AdapterError> {
    serde_json::to_string(holder)
        .map_err(|e| unexpected("UpdateItem", format!("moving tag does not serialise: {e}")))
}

impl Ledger for DynamoLedger {
    async fn load(&self, key: &ReleaseKey) -> Result<Option<Stored>, AdapterError> {
        self.consistent_item(key.id())
            .await?
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
        let mut item: HashMap<String, AttributeValue> = [
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
            ("version", AttributeValue::N(next.to_string())),
            ("doc", AttributeValue::S(doc)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        // PutItem replaces the whole item: leaving the attribute out removes the TTL.
        if let Some(at) = release.expires_at() {
            item.insert("expires_at".to_owned(), AttributeValue::N(at.to_string()));
        }
        self.put_versioned(item, expected).await?;
        Ok(next)
    }

    async fn link_digests(
        &self,
        key: &ReleaseKey,
        links: &[(Digest, Arch)],
    ) -> Result<(), AdapterError> {
        // `digest#<digest>` holds a string set of `repository#tag#arch`: ADD is atomic, so
        // releases sharing a digest never overwrite each other, and a repeat is harmless. The
        // pointers never expire: a published release's untagged children need them for
        // findings after publication.
        for (digest, arch) in links {
            let update = self
                .client
                .update_item()
                .table_name(&self.table)
                .key(
                    LEDGER_KEY,
                    AttributeValue::S(self.pointer_id(&key.repository, digest)),
                )
                .update_expression("ADD #r :entry")
                .condition_expression(
                    "attribute_not_exists(#r) OR contains(#r, :one) OR size(#r) < :max",
                )
                .expression_attribute_names("#r", "releases")
                .expression_attribute_values(
                    ":entry",
                    AttributeValue::Ss(vec![pointer_entry(key, *arch)]),
                )
                .expression_attribute_values(":one", AttributeValue::S(pointer_entry(key, *arch)))
                .expression_attribute_values(
                    ":max",
                    AttributeValue::N(MAX_POINTER_RELEASES.to_string()),
                );
            // Full: this release's scans of that image come through the reconciler.
            if conditional_update(update).await?.is_none() {
                tracing::warn!(release = %key, %digest, "digest pointer is full; scans of this image reach the release through the reconciler");
            }
        }
        Ok(())
    }

    async fn find_by_digest(
        &self,
        repository: &str,
        digest: &Digest,
    ) -> Result<Vec<(ReleaseKey, Arch)>, AdapterError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(
                LEDGER_KEY,
                AttributeValue::S(self.pointer_id(repository, digest)),
            )
            .send()
            .await
            .map_err(|e| classify(DYNAMODB_GET_ITEM, e))?;
        let Some(item) = output.item else {
            return Ok(Vec::new());
        };
        let mut entries: Vec<String> = item
            .get("releases")
            .and_then(|v| v.as_ss().ok())
            .cloned()
            .unwrap_or_default();
        // Pointers written before digests were shared: one `release` and one `arch`.
        if let (Some(release), Some(arch)) = (
            item.get("release").and_then(|v| v.as_s().ok()),
            item.get("arch").and_then(|v| v.as_s().ok()),
        ) {
            entries.push(format!("{release}#{arch}"));
        }
        let mut found = Vec::with_capacity(entries.len());
        for entry in entries {
            match parse_pointer_entry(&entry) {
                // Another repository's release of the same bytes is not this one's business.
                Some(located) if located.0.repository != repository => {}
                Some(located) if !found.contains(&located) => found.push(located),
                Some(_) => {}
                None => {
                    tracing::warn!(%digest, entry = %truncate(&entry), "digest pointer entry does not parse; skipped")
                }
            }
        }
        found.sort();
        Ok(found)
    }

    async fn list(&self, limit: usize) -> Result<Listing, AdapterError> {
        let mut listing = Listing::default();
        let mut pages = self
            .client
            .scan()
            .table_name(&self.table)
            .consistent_read(true)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify(DYNAMODB_SCAN, e))?;
            for item in page.items() {
                let pk = item
                    .get(LEDGER_KEY)
                    .and_then(|v| v.as_s().ok())
                    .cloned()
                    .unwrap_or_default();
                if item_kind(&pk) != ItemKind::Release {
                    continue;
                }
                match decode(item, "Scan") {
                    Ok(stored) => listing.releases.push(stored),
                    Err(error) => {
                        let doc = item
                            .get("doc")
                            .and_then(|v| v.as_s().ok())
                            .map(String::as_str)
                            .unwrap_or_default();
                        listing.unreadable.push(UnreadableRecord {
                            id: truncate(&pk),
                            reason: error.to_string(),
                            mentioned: mentioned_digests(doc.as_bytes()),
                        });
                    }
                }
            }
        }
        listing
            .releases
            .sort_by_key(|s| std::cmp::Reverse(s.release.updated_at));
        listing.releases.truncate(limit);
        Ok(listing)
    }

    async fn lock_moving_tag(
        &self,
        repository: &str,
        tag: &str,
        holder: &str,
        intent: &MovingTagHolder,
        now: Millis,
        until: Millis,
    ) -> Result<MovingTagLock, AdapterError> {
        let intent = holder_json(intent)?;
        let update = self
            .moving_tag_update(repository, tag)
            .update_expression("SET lock_by = :me, lock_until = :until, intent = :intent")
            .condition_expression("attribute_not_exists(lock_until) OR lock_until < :now")
            .expression_attribute_values(":me", AttributeValue::S(holder.to_owned()))
            .expression_attribute_values(":until", AttributeValue::N(until.to_string()))
            .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
            .expression_attribute_values(":intent", AttributeValue::S(intent))
            .return_values(ReturnValue::AllOld);
        let Some(output) = conditional_update(update).await? else {
            return Ok(MovingTagLock::Busy);
        };
        let old = output.attributes.unwrap_or_default();
        let read = |name: &str| -> Result<Option<MovingTagHolder>, AdapterError> {
            old.get(name)
                .and_then(|v| v.as_s().ok())
                .map(|text| {
                    serde_json::from_str(text).map_err(|e| {
                        unexpected(
                            "UpdateItem",
                            format!("moving tag {tag}: `{name}` does not parse: {e}"),
                        )
                    })
                })
                .transpose()
        };
        // An intent survives only when its holder's lease ran out before it gave the lock
        // back: that holder died mid-move.
        let unfinished = if old.contains_key("lock_until") {
            read("intent")?
        } else {
            None
        };
        Ok(MovingTagLock::Acquired {
            holder: read("holder")?.map(Box::new),
            unfinished: unfinished.map(Box::new),
        })
    }

    async fn abandon_moving_tag(
        &self,
        repository: &str,
        tag: &str,
        holder: &str,
        now: Millis,
    ) -> Result<(), AdapterError> {
        let update = self
            .moving_tag_update(repository, tag)
            .update_expression("SET lock_until = :lapsed")
            .condition_expression("lock_by = :me")
            .expression_attribute_values(":me", AttributeValue::S(holder.to_owned()))
            .expression_attribute_values(":lapsed", AttributeValue::N((now - 1).to_string()));
        // No longer ours (the condition failed): nothing to give back.
        conditional_update(update).await?;
        Ok(())
    }

    async fn policy(&self, repository: &str) -> Result<PolicyRead, AdapterError> {
        Ok(self
            .consistent_item(policy_id(repository))
            .await?
            .as_ref()
            .map_or(PolicyRead::Unset, |item| decode_policy(repository, item)))
    }

    async fn save_policy(
        &self,
        record: &PolicyRecord,
        expected: Option<u64>,
    ) -> Result<(), SaveError> {
        let doc = serde_json::to_string(record).map_err(|e| {
            SaveError::Adapter(unexpected(
                "PutItem",
                format!("policy does not serialise: {e}"),
            ))
        })?;
        let item: HashMap<String, AttributeValue> = [
            (LEDGER_KEY, AttributeValue::S(policy_id(&record.repository))),
            ("repository", AttributeValue::S(record.repository.clone())),
            ("version", AttributeValue::N(record.version.to_string())),
            (
                "updated_at",
                AttributeValue::N(record.updated_at.to_string()),
            ),
            ("doc", AttributeValue::S(doc)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        self.put_versioned(item, expected).await
    }

    async fn policies(&self) -> Result<Vec<(String, PolicyRead)>, AdapterError> {
        let mut found = Vec::new();
        let mut pages = self
            .client
            .scan()
            .table_name(&self.table)
            .consistent_read(true)
            .filter_expression("begins_with(#pk, :policy)")
            .expression_attribute_names("#pk", LEDGER_KEY)
            .expression_attribute_values(":policy", AttributeValue::S(POLICY.to_owned()))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify(DYNAMODB_SCAN, e))?;
            for item in page.items() {
                let Some(repository) = item
                    .get(LEDGER_KEY)
                    .and_then(|v| v.as_s().ok())
                    .and_then(|pk| pk.strip_prefix(POLICY))
                else {
                    continue;
                };
                found.push((repository.to_owned(), decode_policy(repository, item)));
            }
        }
        found.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(found)
    }

    async fn retention_resume(&self) -> Result<Option<String>, AdapterError> {
        Ok(self
            .consistent_item(RETENTION_RESUME.to_owned())
            .await?
            .and_then(|item| item.get("next")?.as_s().ok().cloned()))
    }

    async fn set_retention_resume(&self, next: Option<&str>) -> Result<(), AdapterError> {
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(LEDGER_KEY, AttributeValue::S(RETENTION_RESUME.to_owned()));
        if let Some(next) = next {
            put = put.item("next", AttributeValue::S(next.to_owned()));
        }
        put.send()
            .await
            .map_err(|e| classify(DYNAMODB_PUT_ITEM, e))?;
        Ok(())
    }

    async fn moving_tag(
        &self,
        repository: &str,
        tag: &str,
    ) -> Result<Option<MovingTagHolder>, AdapterError> {
        self.consistent_item(moving_tag_id(repository, tag))
            .await?
            .as_ref()
            .and_then(|item| item.get("holder"))
            .and_then(|v| v.as_s().ok())
            .map(|text| {
                serde_json::from_str(text).map_err(|e| {
                    unexpected(
                        "GetItem",
                        format!("moving tag {tag}: `holder` does not parse: {e}"),
                    )
                })
            })
            .transpose()
    }

    async fn unlock_moving_tag(
        &self,
        repository: &str,
        tag: &str,
        holder: &str,
        current: &MovingTagHolder,
    ) -> Result<bool, AdapterError> {
        let current = holder_json(current)?;
        let update = self
            .moving_tag_update(repository, tag)
            .update_expression("SET holder = :holder REMOVE lock_by, lock_until, intent")
            .condition_expression("lock_by = :me")
            .expression_attribute_values(":me", AttributeValue::S(holder.to_owned()))
            .expression_attribute_values(":holder", AttributeValue::S(current));
        Ok(conditional_update(update).await?.is_some())
    }
}
