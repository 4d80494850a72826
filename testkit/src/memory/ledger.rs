//! The release ledger in memory, with DynamoDB's semantics where archgate depends on them:
//! items stored as serialised documents (so what does not round-trip, or does not parse, shows),
//! conditional writes on a version, the 400 KB item limit, TTL deletion some time after
//! expiry (until then an expired item is still read), atomic set additions for digest
//! pointers, and conditional updates for the moving-tag locks.

use super::chaos::Chaos;
use archgate::domain::policy::{PolicyRead, PolicyRecord};
use archgate::domain::retention::mentioned_digests;
use archgate::domain::{Arch, Digest, Millis, Release, ReleaseKey, ReleaseTag};
use archgate::error::AdapterError;
use archgate::operation::{
    DYNAMODB_GET_ITEM, DYNAMODB_PUT_ITEM, DYNAMODB_SCAN, DYNAMODB_UPDATE_ITEM,
};
use archgate::ports::{
    Ledger, Listing, MovingTagHolder, MovingTagLock, SaveError, Stored, UnreadableRecord,
};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

/// DynamoDB's item size limit.
pub const ITEM_LIMIT: usize = 400 * 1024;
/// A digest pointer names at most this many releases (as the DynamoDB adapter).
pub const MAX_POINTER_RELEASES: usize = archgate::aws::MAX_POINTER_RELEASES;

#[derive(Debug, Clone)]
struct ReleaseItem {
    doc: String,
    version: u64,
    /// Seconds since the epoch.
    expires_at: Option<i64>,
}

#[derive(Debug, Clone, Default)]
struct MovingItem {
    holder: Option<MovingTagHolder>,
    lock_by: Option<String>,
    lock_until: Option<Millis>,
    intent: Option<MovingTagHolder>,
}

#[derive(Debug, Default)]
struct Table {
    releases: BTreeMap<String, ReleaseItem>,
    /// Per repository, as the DynamoDB ledger keys them.
    pointers: BTreeMap<(String, Digest), BTreeSet<String>>,
    /// Where the next retention run starts.
    retention_resume: Option<String>,
    /// Policy items by repository: their version and document.
    policies: BTreeMap<String, (u64, String)>,
    moving: BTreeMap<(String, String), MovingItem>,
    largest_item: usize,
    expired: u64,
}

#[derive(Debug, Clone, Default)]
pub struct MemoryLedger {
    table: Arc<Mutex<Table>>,
    chaos: Chaos,
}

fn release_error(operation: &'static str, reason: String) -> AdapterError {
    AdapterError::Unexpected {
        service: "DynamoDB",
        operation,
        reason,
    }
}

impl MemoryLedger {
    pub fn new(chaos: Chaos) -> Self {
        MemoryLedger {
            table: Arc::default(),
            chaos,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes an item's document as another program might have (the simulation's damaged or
    /// newer-version items).
    pub fn put_raw(&self, key: &ReleaseKey, doc: &str) {
        let mut table = self.lock();
        let version = table.releases.get(&key.id()).map_or(1, |i| i.version + 1);
        table.releases.insert(
            key.id(),
            ReleaseItem {
                doc: doc.to_owned(),
                version,
                expires_at: None,
            },
        );
    }

    /// DynamoDB's TTL: items whose expiry (seconds) is before `now_secs` go.
    pub fn sweep_expired(&self, now_secs: i64) -> Vec<String> {
        let mut table = self.lock();
        let gone: Vec<String> = table
            .releases
            .iter()
            .filter(|(_, item)| item.expires_at.is_some_and(|at| at < now_secs))
            .map(|(id, _)| id.clone())
            .collect();
        for id in &gone {
            table.releases.remove(id);
        }
        table.expired += gone.len() as u64;
        gone
    }

    /// The largest release item written so far, in bytes.
    pub fn largest_item(&self) -> usize {
        self.lock().largest_item
    }

    /// Every digest pointer: its repository, the image and the releases it names, without
    /// faults.
    pub fn pointers(&self) -> Vec<(String, Digest, BTreeSet<String>)> {
        self.lock()
            .pointers
            .iter()
            .map(|((repository, digest), entries)| {
                (repository.clone(), digest.clone(), entries.clone())
            })
            .collect()
    }

    /// Every release item as stored right now: its version and TTL, without faults or
    /// scheduling (what the simulation's checks read).
    pub fn versions(&self) -> BTreeMap<String, (u64, Option<i64>)> {
        self.lock()
            .releases
            .iter()
            .map(|(id, item)| (id.clone(), (item.version, item.expires_at)))
            .collect()
    }

    /// The release an item holds, when it parses.
    pub fn peek(&self, id: &str) -> Option<Release> {
        let table = self.lock();
        serde_json::from_str(&table.releases.get(id)?.doc).ok()
    }

    /// Every moving-tag item: (repository, tag) → its holder and the intent of a move under
    /// way, without faults.
    pub fn moving_tags(&self) -> Vec<((String, String), Vec<MovingTagHolder>)> {
        self.lock()
            .moving
            .iter()
            .map(|(key, item)| {
                let named = item.holder.iter().chain(item.intent.iter()).cloned();
                (key.clone(), named.collect())
            })
            .collect()
    }

    /// Writes a moving tag's holder as another program might have (the simulation's
    /// deliberate faults).
    pub fn put_moving_tag(&self, repository: &str, tag: &str, holder: MovingTagHolder) {
        self.lock()
            .moving
            .entry((repository.to_owned(), tag.to_owned()))
            .or_default()
            .holder = Some(holder);
    }

    /// The releases a repository's digest pointer names, without faults.
    pub fn pointer(&self, repository: &str, digest: &Digest) -> BTreeSet<String> {
        self.lock()
            .pointers
            .get(&(repository.to_owned(), digest.clone()))
            .cloned()
            .unwrap_or_default()
    }

    /// Stores a policy item's document as given (a damaged one, for instance).
    pub fn put_raw_policy(&self, repository: &str, version: u64, doc: &str) {
        self.lock()
            .policies
            .insert(repository.to_owned(), (version, doc.to_owned()));
    }
}

fn parse(id: &str, item: &ReleaseItem) -> Result<Stored, String> {
    let release: Release =
        serde_json::from_str(&item.doc).map_err(|e| format!("ledger item does not parse: {e}"))?;
    if release.key.id() != id {
        return Err(format!(
            "ledger item {id} holds the release {}",
            release.key.id()
        ));
    }
    Ok(Stored {
        release,
        version: item.version,
    })
}

/// A policy item's record, or why it cannot be applied (as the DynamoDB ledger reads it).
fn decode_policy(repository: &str, version: u64, doc: &str) -> PolicyRead {
    let unreadable = |reason: String| PolicyRead::Unreadable {
        reason,
        version: Some(version),
    };
    match serde_json::from_str::<PolicyRecord>(doc) {
        Ok(record) if record.repository == repository && record.version == version => {
            PolicyRead::Found(record)
        }
        Ok(record) if record.repository != repository => {
            unreadable(format!("it names repository {}", record.repository))
        }
        Ok(record) => unreadable(format!(
            "its document is version {}, the item {version}",
            record.version
        )),
        Err(e) => unreadable(e.to_string()),
    }
}

fn pointer_entry(key: &ReleaseKey, arch: Arch) -> String {
    format!("{}#{}", key.id(), arch.as_str())
}

fn parse_pointer_entry(entry: &str) -> Option<(ReleaseKey, Arch)> {
    let (release, arch) = entry.rsplit_once('#')?;
    let (repository, tag) = release.rsplit_once('#')?;
    Some((
        ReleaseKey::new(repository, ReleaseTag::parse(tag).ok()?),
        Arch::parse(arch)?,
    ))
}

impl Ledger for MemoryLedger {
    async fn load(&self, key: &ReleaseKey) -> Result<Option<Stored>, AdapterError> {
        let fault = self.chaos.enter(DYNAMODB_GET_ITEM).await?;
        let found = {
            let table = self.lock();
            table
                .releases
                .get(&key.id())
                .map(|item| parse(&key.id(), item))
        };
        let found = found
            .transpose()
            .map_err(|reason| release_error("GetItem", reason))?;
        self.chaos.leave(fault, DYNAMODB_GET_ITEM, found).await
    }

    async fn save(&self, release: &Release, expected: Option<u64>) -> Result<u64, SaveError> {
        let fault = self.chaos.enter(DYNAMODB_PUT_ITEM).await?;
        let doc = serde_json::to_string(release).map_err(|e| {
            SaveError::Adapter(release_error(
                "PutItem",
                format!("release does not serialise: {e}"),
            ))
        })?;
        let outcome = {
            let mut table = self.lock();
            let id = release.key.id();
            let current = table.releases.get(&id).map(|i| i.version);
            if current != expected {
                Err(SaveError::Conflict { expected })
            } else if doc.len() + 256 > ITEM_LIMIT {
                // DynamoDB refuses the whole write.
                Err(SaveError::Adapter(AdapterError::Rejected {
                    service: "DynamoDB",
                    operation: "PutItem",
                    code: "ValidationException".to_owned(),
                    source: format!("item size {} exceeds 400 KB", doc.len()).into(),
                }))
            } else {
                let next = expected.map_or(1, |v| v + 1);
                table.largest_item = table.largest_item.max(doc.len());
                table.releases.insert(
                    id,
                    ReleaseItem {
                        doc,
                        version: next,
                        expires_at: release.expires_at(),
                    },
                );
                Ok(next)
            }
        };
        let version = outcome?;
        Ok(self.chaos.leave(fault, DYNAMODB_PUT_ITEM, version).await?)
    }

    async fn link_digests(
        &self,
        key: &ReleaseKey,
        links: &[(Digest, Arch)],
    ) -> Result<(), AdapterError> {
        for (digest, arch) in links {
            let fault = self.chaos.enter(DYNAMODB_UPDATE_ITEM).await?;
            {
                let mut table = self.lock();
                let entries = table
                    .pointers
                    .entry((key.repository.clone(), digest.clone()))
                    .or_default();
                let entry = pointer_entry(key, *arch);
                if entries.contains(&entry) || entries.len() < MAX_POINTER_RELEASES {
                    entries.insert(entry);
                }
            }
            self.chaos.leave(fault, DYNAMODB_UPDATE_ITEM, ()).await?;
        }
        Ok(())
    }

    async fn find_by_digest(
        &self,
        repository: &str,
        digest: &Digest,
    ) -> Result<Vec<(ReleaseKey, Arch)>, AdapterError> {
        let fault = self.chaos.enter(DYNAMODB_GET_ITEM).await?;
        let found: Vec<(ReleaseKey, Arch)> = self
            .lock()
            .pointers
            .get(&(repository.to_owned(), digest.clone()))
            .map(|entries| {
                entries
                    .iter()
                    .filter_map(|e| parse_pointer_entry(e))
                    .filter(|(key, _)| key.repository == repository)
                    .collect()
            })
            .unwrap_or_default();
        self.chaos.leave(fault, DYNAMODB_GET_ITEM, found).await
    }

    async fn list(&self, limit: usize) -> Result<Listing, AdapterError> {
        let fault = self.chaos.enter(DYNAMODB_SCAN).await?;
        let mut listing = Listing::default();
        {
            let table = self.lock();
            for (id, item) in &table.releases {
                match parse(id, item) {
                    Ok(stored) => listing.releases.push(stored),
                    Err(reason) => listing.unreadable.push(UnreadableRecord {
                        id: id.clone(),
                        reason,
                        mentioned: mentioned_digests(item.doc.as_bytes()),
                    }),
                }
            }
        }
        listing
            .releases
            .sort_by_key(|s| std::cmp::Reverse(s.release.updated_at));
        listing.releases.truncate(limit);
        self.chaos.leave(fault, DYNAMODB_SCAN, listing).await
    }

    async fn policy(&self, repository: &str) -> Result<PolicyRead, AdapterError> {
        let fault = self.chaos.enter(DYNAMODB_GET_ITEM).await?;
        let read = match self.lock().policies.get(repository) {
            None => PolicyRead::Unset,
            Some((version, doc)) => decode_policy(repository, *version, doc),
        };
        self.chaos.leave(fault, DYNAMODB_GET_ITEM, read).await
    }

    async fn save_policy(
        &self,
        record: &PolicyRecord,
        expected: Option<u64>,
    ) -> Result<(), SaveError> {
        let fault = self.chaos.enter(DYNAMODB_PUT_ITEM).await?;
        let doc = serde_json::to_string(record).map_err(|e| {
            SaveError::Adapter(release_error(
                "PutItem",
                format!("policy does not serialise: {e}"),
            ))
        })?;
        {
            let mut table = self.lock();
            let current = table.policies.get(&record.repository).map(|(v, _)| *v);
            if current != expected {
                return Err(SaveError::Conflict { expected });
            }
            table
                .policies
                .insert(record.repository.clone(), (record.version, doc));
        }
        Ok(self.chaos.leave(fault, DYNAMODB_PUT_ITEM, ()).await?)
    }

    async fn policies(&self) -> Result<Vec<(String, PolicyRead)>, AdapterError> {
        let fault = self.chaos.enter(DYNAMODB_SCAN).await?;
        let found = self
            .lock()
            .policies
            .iter()
            .map(|(repository, (version, doc))| {
                (repository.clone(), decode_policy(repository, *version, doc))
            })
            .collect();
        self.chaos.leave(fault, DYNAMODB_SCAN, found).await
    }

    async fn retention_resume(&self) -> Result<Option<String>, AdapterError> {
        let fault = self.chaos.enter(DYNAMODB_GET_ITEM).await?;
        let next = self.lock().retention_resume.clone();
        self.chaos.leave(fault, DYNAMODB_GET_ITEM, next).await
    }

    async fn set_retention_resume(&self, next: Option<&str>) -> Result<(), AdapterError> {
        let fault = self.chaos.enter(DYNAMODB_PUT_ITEM).await?;
        self.lock().retention_resume = next.map(str::to_owned);
        self.chaos.leave(fault, DYNAMODB_PUT_ITEM, ()).await
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
        let fault = self.chaos.enter(DYNAMODB_UPDATE_ITEM).await?;
        let answer = {
            let mut table = self.lock();
            let item = table
                .moving
                .entry((repository.to_owned(), tag.to_owned()))
                .or_default();
            match item.lock_until {
                Some(live) if live >= now => MovingTagLock::Busy,
                expired => {
                    let unfinished = expired.and(item.intent.clone());
                    item.lock_by = Some(holder.to_owned());
                    item.lock_until = Some(until);
                    item.intent = Some(intent.clone());
                    MovingTagLock::Acquired {
                        holder: item.holder.clone().map(Box::new),
                        unfinished: unfinished.map(Box::new),
                    }
                }
            }
        };
        self.chaos.leave(fault, DYNAMODB_UPDATE_ITEM, answer).await
    }

    async fn abandon_moving_tag(
        &self,
        repository: &str,
        tag: &str,
        holder: &str,
        now: Millis,
    ) -> Result<(), AdapterError> {
        let fault = self.chaos.enter(DYNAMODB_UPDATE_ITEM).await?;
        {
            let mut table = self.lock();
            if let Some(item) = table
                .moving
                .get_mut(&(repository.to_owned(), tag.to_owned()))
            {
                if item.lock_by.as_deref() == Some(holder) {
                    item.lock_until = Some(now - 1);
                }
            }
        }
        self.chaos.leave(fault, DYNAMODB_UPDATE_ITEM, ()).await
    }

    async fn moving_tag(
        &self,
        repository: &str,
        tag: &str,
    ) -> Result<Option<MovingTagHolder>, AdapterError> {
        let fault = self.chaos.enter(DYNAMODB_GET_ITEM).await?;
        let holder = self
            .lock()
            .moving
            .get(&(repository.to_owned(), tag.to_owned()))
            .and_then(|m| m.holder.clone());
        self.chaos.leave(fault, DYNAMODB_GET_ITEM, holder).await
    }

    async fn unlock_moving_tag(
        &self,
        repository: &str,
        tag: &str,
        holder: &str,
        current: &MovingTagHolder,
    ) -> Result<bool, AdapterError> {
        let fault = self.chaos.enter(DYNAMODB_UPDATE_ITEM).await?;
        let ours = {
            let mut table = self.lock();
            let item = table
                .moving
                .entry((repository.to_owned(), tag.to_owned()))
                .or_default();
            if item.lock_by.as_deref() == Some(holder) {
                item.holder = Some(current.clone());
                item.lock_by = None;
                item.lock_until = None;
                item.intent = None;
                true
            } else {
                false
            }
        };
        self.chaos.leave(fault, DYNAMODB_UPDATE_ITEM, ours).await
    }
}
