//! The dead-letter queue the template wires to every rule and every function: what landed
//! there, and sending it back through its handler.
//!
//! Two kinds of message arrive: an event EventBridge could not deliver (the body is the
//! event; why is in the `ERROR_CODE` / `ERROR_MESSAGE` attributes) and an invocation that
//! still failed after Lambda's asynchronous retries (the body is Lambda's record: the event
//! in `requestPayload`, the error in `responsePayload`).

use serde_json::Value;
use std::collections::HashMap;

/// One dead-lettered event, read from its message.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    pub message_id: String,
    pub receipt_handle: String,
    /// Who gave up on it: `EventBridge` or `Lambda`.
    pub from: &'static str,
    /// Why, as the service said.
    pub why: String,
    /// The event, when the body holds one.
    pub event: Option<Value>,
}

impl DeadLetter {
    /// Reads a message's body and attributes (`name → string value`).
    pub fn read(
        message_id: String,
        receipt_handle: String,
        body: &str,
        attributes: &HashMap<String, String>,
    ) -> DeadLetter {
        let parsed: Option<Value> = serde_json::from_str(body).ok();
        match parsed {
            Some(record) if record.get("requestPayload").is_some() => {
                let error = &record["responsePayload"];
                let why = format!(
                    "{}: {} ({} after {} attempts)",
                    error["errorType"].as_str().unwrap_or("error"),
                    error["errorMessage"].as_str().unwrap_or("no message"),
                    record["requestContext"]["condition"]
                        .as_str()
                        .unwrap_or("failed"),
                    record["requestContext"]["approximateInvokeCount"]
                        .as_u64()
                        .unwrap_or(0)
                );
                DeadLetter {
                    message_id,
                    receipt_handle,
                    from: "Lambda",
                    why,
                    event: Some(record["requestPayload"].clone()),
                }
            }
            event => {
                let attribute = |name: &str| attributes.get(name).map(String::as_str);
                let why = match (attribute("ERROR_CODE"), attribute("ERROR_MESSAGE")) {
                    (Some(code), Some(message)) => format!("{code}: {message}"),
                    (Some(code), None) => code.to_owned(),
                    (None, Some(message)) => message.to_owned(),
                    (None, None) => "no reason given".to_owned(),
                };
                let why = match event {
                    Some(_) => why,
                    None => format!("{why}; the body is not JSON"),
                };
                DeadLetter {
                    message_id,
                    receipt_handle,
                    from: "EventBridge",
                    why,
                    event,
                }
            }
        }
    }

    /// One line for people: id, who gave up, the event's kind and time, why.
    pub fn describe(&self) -> String {
        let field = |name: &str| {
            self.event
                .as_ref()
                .and_then(|e| e.get(name))
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_owned()
        };
        format!(
            "{}  {:<11} {} {} ({}): {}",
            self.message_id,
            self.from,
            field("time"),
            field("detail-type"),
            field("source"),
            self.why
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_eventbridge_dead_letter_is_its_event_with_the_reason_in_attributes() {
        let event = json!({"source": "aws.s3", "detail-type": "Object Created", "time": "2025-03-14T09:41:02Z"});
        let attributes = HashMap::from([
            ("ERROR_CODE".to_owned(), "SDK_CLIENT_ERROR".to_owned()),
            ("ERROR_MESSAGE".to_owned(), "Lambda throttled".to_owned()),
        ]);
        let letter = DeadLetter::read("m1".into(), "r1".into(), &event.to_string(), &attributes);
        assert_eq!(letter.from, "EventBridge");
        assert_eq!(letter.event, Some(event));
        assert_eq!(letter.why, "SDK_CLIENT_ERROR: Lambda throttled");
        assert!(letter.describe().contains("Object Created (aws.s3)"));
    }

    #[test]
    fn a_lambda_failure_record_yields_the_request_and_the_error() {
        let event =
            json!({"source": "aws.codebuild", "detail-type": "CodeBuild Build State Change"});
        let record = json!({
            "version": "1.0",
            "requestContext": {"condition": "RetriesExhausted", "approximateInvokeCount": 3},
            "requestPayload": event,
            "responsePayload": {"errorType": "Archgate.Ledger", "errorMessage": "throttled"}
        });
        let letter = DeadLetter::read(
            "m2".into(),
            "r2".into(),
            &record.to_string(),
            &HashMap::new(),
        );
        assert_eq!(letter.from, "Lambda");
        assert_eq!(letter.event, Some(event));
        assert_eq!(
            letter.why,
            "Archgate.Ledger: throttled (RetriesExhausted after 3 attempts)"
        );
    }

    #[test]
    fn a_body_that_is_not_json_is_listed_and_never_sent_back() {
        let letter = DeadLetter::read("m3".into(), "r3".into(), "{oops", &HashMap::new());
        assert_eq!(letter.event, None);
        assert!(letter.why.contains("not JSON"));
    }
}
