//! EventBridge in memory: every event archgate publishes, in order, with its detail-type and
//! detail exactly as PutEvents would carry them.

use super::chaos::Chaos;
use archgate::error::AdapterError;
use archgate::operation::EVENTBRIDGE_PUT_EVENTS;
use archgate::ports::EventPublisher;
use std::sync::{Arc, Mutex};

/// One published event: detail-type and the detail as JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct Published {
    pub detail_type: String,
    pub detail: serde_json::Value,
}

#[derive(Debug, Clone, Default)]
pub struct MemoryEvents {
    published: Arc<Mutex<Vec<Published>>>,
    chaos: Chaos,
}

impl MemoryEvents {
    pub fn new(chaos: Chaos) -> Self {
        MemoryEvents {
            published: Arc::default(),
            chaos,
        }
    }

    /// Everything published so far.
    pub fn published(&self) -> Vec<Published> {
        self.published
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The events published after the first `seen`.
    pub fn published_since(&self, seen: usize) -> Vec<Published> {
        self.published
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(seen..)
            .map(<[Published]>::to_vec)
            .unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        self.published
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl EventPublisher for MemoryEvents {
    async fn publish_detail(&self, detail_type: &str, detail: String) -> Result<(), AdapterError> {
        let fault = self.chaos.enter(EVENTBRIDGE_PUT_EVENTS).await?;
        // EventBridge takes a detail of at most 256 KB, as JSON.
        let detail: serde_json::Value =
            serde_json::from_str(&detail).map_err(|e| AdapterError::Rejected {
                service: "EventBridge",
                operation: "PutEvents",
                code: "MalformedDetail".to_owned(),
                source: e.to_string().into(),
            })?;
        self.published
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Published {
                detail_type: detail_type.to_owned(),
                detail,
            });
        self.chaos.leave(fault, EVENTBRIDGE_PUT_EVENTS, ()).await
    }
}
