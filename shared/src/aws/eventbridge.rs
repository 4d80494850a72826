//! EventBridge: PutEvents of release events on the configured bus.

use super::classify;
use crate::domain::release_event::EVENT_SOURCE;
use crate::error::AdapterError;
use crate::operation::EVENTBRIDGE_PUT_EVENTS;
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
    async fn publish_detail(&self, detail_type: &str, detail: String) -> Result<(), AdapterError> {
        let entry = PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus)
            .source(EVENT_SOURCE)
            .detail_type(detail_type)
            .detail(detail)
            .build();
        let output = self
            .client
            .put_events()
            .entries(entry)
            .send()
            .await
            .map_err(|e| classify(EVENTBRIDGE_PUT_EVENTS, e))?;
        if output.failed_entry_count() > 0 {
            // PutEvents reports per-entry failures (throttling among them) with a 200.
            let failed: Vec<(&str, &str)> = output
                .entries()
                .iter()
                .filter_map(|e| {
                    e.error_code()
                        .map(|c| (c, e.error_message().unwrap_or_default()))
                })
                .collect();
            let reason = failed
                .iter()
                .map(|(code, message)| format!("{code}: {message}"))
                .collect::<Vec<_>>()
                .join("; ");
            let retryable = failed.iter().all(|(code, _)| {
                super::THROTTLING_CODES.contains(code) || super::is_server_fault(code)
            });
            return Err(if retryable {
                AdapterError::Transient {
                    service: "EventBridge",
                    operation: "PutEvents",
                    source: reason.into(),
                }
            } else {
                AdapterError::Rejected {
                    service: "EventBridge",
                    operation: "PutEvents",
                    code: failed.first().map_or("Unknown", |(c, _)| c).to_owned(),
                    source: reason.into(),
                }
            });
        }
        Ok(())
    }
}
