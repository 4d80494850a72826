//! `archgate replay FILE...`: routes EventBridge events to their handlers exactly as
//! template.yaml's rules do, against the configured endpoint.

use archgate::wiring::AwsPipeline;
use archgate_testkit::routing::dispatch;
use serde_json::{json, Value};

/// One event file: its event, or the answer that says why it cannot be replayed (a file
/// that is not JSON is reported, not crashed on).
pub fn read_event(path: &std::path::Path) -> Result<Value, Value> {
    let answer = |error: Value| {
        let mut error = error;
        error["file"] = json!(path.display().to_string());
        error
    };
    let bytes = std::fs::read(path).map_err(|e| {
        answer(json!({"status": "error", "error_message": format!("cannot read: {e}")}))
    })?;
    serde_json::from_slice::<Value>(&bytes).map_err(|e| {
        answer(json!({"status": "error", "error_type": "Archgate.MalformedEvent", "error_message": format!("not JSON: {e}")}))
    })
}

/// When an event happened, by its `time` (RFC 3339); `None` without one.
pub fn event_time(event: &Value) -> Option<time::OffsetDateTime> {
    let text = event.get("time")?.as_str()?;
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()
}

/// Events with a time first, earliest first; then the others.
fn delivery_order(event: &Value) -> (bool, Option<time::OffsetDateTime>) {
    let time = event_time(event);
    (time.is_none(), time)
}

/// Replays event files in the order their events happened (by `time`; events without one
/// keep their place after those with one), as EventBridge would have delivered them, each
/// answer naming its file. Files that cannot be read are answered first.
pub async fn replay_files(pipeline: &AwsPipeline, paths: &[std::path::PathBuf]) -> Vec<Value> {
    let mut answers = Vec::new();
    let mut events = Vec::new();
    for path in paths {
        match read_event(path) {
            Ok(event) => events.push((path, event)),
            Err(answer) => answers.push(answer),
        }
    }
    // Stable: events of one time, and events without one, keep the order they were given.
    events.sort_by_key(|(_, event)| delivery_order(event));
    for (path, event) in events {
        let mut answer = dispatch(pipeline, event).await;
        answer["file"] = json!(path.display().to_string());
        answers.push(answer);
    }
    answers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_replayed_in_the_order_they_happened() {
        // Given a completion, an upload a few minutes earlier and an event without a time
        let completion = json!({"time": "2025-03-14T09:44:35Z"});
        let upload = json!({"time": "2025-03-14T09:41:02Z"});
        let timeless = json!({"detail-type": "Scheduled Event"});
        let odd = json!({"time": "yesterday"});
        let mut events = [&timeless, &completion, &odd, &upload];
        // When they are put in delivery order
        events.sort_by_key(|event| delivery_order(event));
        // Then the upload comes first, and the events without a readable time last, as given
        assert_eq!(events, [&upload, &completion, &timeless, &odd]);
    }
}
