//! EventBridge: PutEvents of release events on the configured bus.

use super::classify;
use crate::domain::release_event::{ReleaseEvent, EVENT_SOURCE};
use crate::error::AdapterError;
use crate::ports::EventPublisher;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;

#[derive(Clone, Debug)]
pub struct EventBridgePublisher {
    client: aws_sdk_eventbridge::Client,
    bus: String,
}

impl EventBridgePublisher {
    pub fn new(client: aws_sdk_eventbridge::Client, bus: &str) -> Self {
        EventBridgePublisher {
            client,
            bus: bus.to_owned(),
        }
    }
}

impl EventPublisher for EventBridgePublisher {
    async fn publish(&self, event: &ReleaseEvent) -> Result<(), AdapterError> {
        let detail =
            serde_json::to_string(&event.detail).map_err(|e| AdapterError::Unexpected {
                service: "EventBridge",
                operation: "PutEvents",
                reason: format!("event does not serialise: {e}"),
            })?;
        let entry = PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus)
            .source(EVENT_SOURCE)
            .detail_type(event.detail_type())
            .detail(detail)
            .build();
        let output = self
            .client
            .put_events()
            .entries(entry)
            .send()
            .await
            .map_err(|e| classify("EventBridge", "PutEvents", e))?;
        if output.failed_entry_count() > 0 {
            let reason = output
                .entries()
                .iter()
                .filter_map(|e| {
                    e.error_code()
                        .map(|c| format!("{c}: {}", e.error_message().unwrap_or_default()))
                })
                .collect::<Vec<_>>()
                .join("; ");
            // PutEvents reports per-entry failures (throttling among them) with a 200.
            return Err(AdapterError::Transient {
                service: "EventBridge",
                operation: "PutEvents",
                source: reason.into(),
            });
        }
        Ok(())
    }
}
