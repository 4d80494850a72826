//! The dead-letter queue the template wires to every rule and every function: what landed
//! there, and sending it back through its handler.
//!
//! Two kinds of message arrive: an event EventBridge could not deliver (the body is the
//! event; why is in the `ERROR_CODE` / `ERROR_MESSAGE` attributes) and an invocation that
//! still failed after Lambda's asynchronous retries (the body is Lambda's record: the event
//! in `requestPayload`, the error in `responsePayload`). Each says which target it was for:
//! EventBridge in the `TARGET_ARN` attribute, Lambda in `requestContext.functionArn`.

use archgate::config::{RECONCILER_FUNCTION, RETENTION_FUNCTION};
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
    /// The target it was for, as the service named it (a Lambda function's ARN), when it did.
    pub target: Option<String>,
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
                    target: record["requestContext"]["functionArn"]
                        .as_str()
                        .map(str::to_owned),
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
                    target: attribute("TARGET_ARN").map(str::to_owned),
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

/// A Lambda function's name from its name or ARN (`arn:aws:lambda:…:function:NAME[:QUALIFIER]`).
pub fn function_name(name_or_arn: &str) -> &str {
    match name_or_arn.split_once(":function:") {
        Some((_, rest)) => rest.split(':').next().unwrap_or(rest),
        None => name_or_arn,
    }
}

/// The installation's scheduled functions, as deployed (names or ARNs, from the stack's
/// outputs); either may be unknown to this operator's configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScheduledFunctions {
    pub reconciler: Option<String>,
    pub retention: Option<String>,
}

impl ScheduledFunctions {
    pub fn from_env() -> Self {
        let variable = |name: &str| {
            std::env::var(name)
                .ok()
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        ScheduledFunctions {
            reconciler: variable(RECONCILER_FUNCTION),
            retention: variable(RETENTION_FUNCTION),
        }
    }

    /// The deployed function a dead-lettered scheduled event goes back to: the one the
    /// message says it was for, when that is one of this installation's; otherwise why not.
    pub fn target_of(&self, letter: &DeadLetter) -> Result<&str, String> {
        let Some(target) = letter.target.as_deref() else {
            return Err(
                "the message does not say which function the scheduled event was for".into(),
            );
        };
        let name = function_name(target);
        let ours = [&self.reconciler, &self.retention];
        if let Some(function) = ours
            .iter()
            .filter_map(|f| f.as_deref())
            .find(|f| function_name(f) == name)
        {
            return Ok(function);
        }
        if ours.iter().all(|f| f.is_none()) {
            return Err(format!(
                "it was for function {name}; set {RECONCILER_FUNCTION} and {RETENTION_FUNCTION} \
                 (the stack's ReconcilerFunctionName and RetentionFunctionName outputs) to send \
                 scheduled events back"
            ));
        }
        Err(format!(
            "it was for function {name}, which is not this installation's reconciler ({}) or \
             retention function ({})",
            self.reconciler.as_deref().unwrap_or("not set"),
            self.retention.as_deref().unwrap_or("not set")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use archgate::inbound::is_scheduled;
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
        assert_eq!(letter.target, None);
        assert!(letter.describe().contains("Object Created (aws.s3)"));
    }

    #[test]
    fn a_lambda_failure_record_yields_the_request_and_the_error() {
        let event =
            json!({"source": "aws.codebuild", "detail-type": "CodeBuild Build State Change"});
        let record = json!({
            "version": "1.0",
            "requestContext": {"condition": "RetriesExhausted", "approximateInvokeCount": 3,
                "functionArn": "arn:aws:lambda:eu-west-1:123456789012:function:archgate-BuildCompleted:$LATEST"},
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
            letter.target.as_deref(),
            Some("arn:aws:lambda:eu-west-1:123456789012:function:archgate-BuildCompleted:$LATEST")
        );
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

    fn scheduled_letter(target: Option<&str>) -> DeadLetter {
        DeadLetter {
            message_id: "m4".into(),
            receipt_handle: "r4".into(),
            from: "EventBridge",
            why: "no reason given".into(),
            event: Some(json!({"source": "aws.events", "detail-type": "Scheduled Event"})),
            target: target.map(str::to_owned),
        }
    }

    #[test]
    fn a_scheduled_event_goes_back_to_the_function_it_was_for_when_it_is_ours() {
        let functions = ScheduledFunctions {
            reconciler: Some("archgate-Reconciler-1A2B".into()),
            retention: Some("archgate-RetentionCleanup-3C4D".into()),
        };
        let letter = scheduled_letter(Some(
            "arn:aws:lambda:eu-west-1:123456789012:function:archgate-RetentionCleanup-3C4D",
        ));
        assert!(is_scheduled(letter.event.as_ref().unwrap()));
        assert_eq!(
            functions.target_of(&letter),
            Ok("archgate-RetentionCleanup-3C4D")
        );
        let qualified = scheduled_letter(Some(
            "arn:aws:lambda:eu-west-1:123456789012:function:archgate-Reconciler-1A2B:$LATEST",
        ));
        assert_eq!(
            functions.target_of(&qualified),
            Ok("archgate-Reconciler-1A2B")
        );
    }

    #[test]
    fn a_scheduled_event_for_another_function_or_none_is_not_sent_anywhere() {
        let functions = ScheduledFunctions {
            reconciler: Some("archgate-Reconciler-1A2B".into()),
            retention: None,
        };
        let other = scheduled_letter(Some("arn:aws:lambda:eu-west-1:1:function:billing-nightly"));
        assert!(functions
            .target_of(&other)
            .unwrap_err()
            .contains("billing-nightly, which is not this installation's"));
        assert!(functions
            .target_of(&scheduled_letter(None))
            .unwrap_err()
            .contains("does not say"));
        let unconfigured = ScheduledFunctions::default().target_of(&other).unwrap_err();
        assert!(
            unconfigured.contains("ARCHGATE_RECONCILER_FUNCTION"),
            "{unconfigured}"
        );
    }
}
