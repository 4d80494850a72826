//! `archgate dlq list|redrive`: what landed in the dead-letter queue, and sending it back:
//! a pipeline event through its handler (the functions' own code, as `replay` runs it), a
//! scheduled event by invoking the deployed function it was for.

mod letters;

use super::configured;
use crate::error::CliError;
// The template's schedules (the reconciler's, retention's) are sent back by invoking the
// deployed function, not by running the pass here.
use crate::local::aws;
use archgate::aws::sdk_config;
use archgate::config::DEAD_LETTER_QUEUE;
use archgate::inbound::is_scheduled;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use aws_sdk_sqs::types::MessageSystemAttributeName;
use letters::{DeadLetter, ScheduledFunctions};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};

/// How long `list` hides each message it has read, so the next receive returns others; every
/// one is made visible again when the listing ends.
const LIST_HIDE_SECONDS: i32 = 60;

fn queue_url(queue: Option<String>) -> Result<String, CliError> {
    match queue.filter(|q| !q.trim().is_empty()) {
        Some(queue) => Ok(queue),
        None => Ok(super::required(DEAD_LETTER_QUEUE)?),
    }
}

/// Up to ten messages, hidden for `visibility` seconds.
async fn receive(
    sqs: &aws_sdk_sqs::Client,
    queue: &str,
    visibility: i32,
) -> Result<Vec<DeadLetter>, CliError> {
    let output = sqs
        .receive_message()
        .queue_url(queue)
        .max_number_of_messages(10)
        .visibility_timeout(visibility)
        // Long polling asks every SQS server: an empty answer means the queue has no
        // message left to give, not that one sampled server had none.
        .wait_time_seconds(1)
        .message_attribute_names("All")
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await
        .map_err(aws(format!("ReceiveMessage on {queue}")))?;
    Ok(output
        .messages()
        .iter()
        .map(|m| {
            let attributes: HashMap<String, String> = m
                .message_attributes()
                .into_iter()
                .flatten()
                .filter_map(|(k, v)| Some((k.clone(), v.string_value()?.to_owned())))
                .collect();
            DeadLetter::read(
                m.message_id().unwrap_or_default().to_owned(),
                m.receipt_handle().unwrap_or_default().to_owned(),
                m.body().unwrap_or_default(),
                &attributes,
            )
        })
        .collect())
}

/// `archgate dlq list`: every message, one line each, and how many the queue reports. Each
/// message is hidden while the listing reads on (so the next receive returns others) and
/// visible again when it ends, whether it ends well or not.
pub async fn list(queue: Option<String>) -> Result<(), CliError> {
    let queue = queue_url(queue)?;
    let sqs = aws_sdk_sqs::Client::new(&sdk_config().await?);
    let reported = reported_count(&sqs, &queue).await?;
    let mut seen: BTreeMap<String, DeadLetter> = BTreeMap::new();
    let mut hidden: Vec<String> = Vec::new();
    let read = async {
        loop {
            let letters = receive(&sqs, &queue, LIST_HIDE_SECONDS).await?;
            if letters.is_empty() {
                return Ok::<(), CliError>(());
            }
            for letter in letters {
                hidden.push(letter.receipt_handle.clone());
                seen.entry(letter.message_id.clone()).or_insert(letter);
            }
        }
    }
    .await;
    let unhidden = show_again(&sqs, &queue, &hidden).await;
    read?;
    for letter in seen.values() {
        println!("{}", letter.describe());
    }
    println!(
        "{} message(s) in {queue} (the queue reports {reported})",
        seen.len()
    );
    unhidden
}

/// The queue's own count: messages visible plus those in flight (received, not deleted).
async fn reported_count(sqs: &aws_sdk_sqs::Client, queue: &str) -> Result<u64, CliError> {
    use aws_sdk_sqs::types::QueueAttributeName;
    let output = sqs
        .get_queue_attributes()
        .queue_url(queue)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .map_err(aws(format!("GetQueueAttributes on {queue}")))?;
    let attributes = output.attributes();
    let count = |name: QueueAttributeName| -> u64 {
        attributes
            .and_then(|a| a.get(&name))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok(count(QueueAttributeName::ApproximateNumberOfMessages)
        + count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible))
}

/// Makes the messages of these receipts visible again at once, ten to a call.
async fn show_again(
    sqs: &aws_sdk_sqs::Client,
    queue: &str,
    receipts: &[String],
) -> Result<(), CliError> {
    use aws_sdk_sqs::types::ChangeMessageVisibilityBatchRequestEntry;
    let mut failed = 0;
    for batch in receipts.chunks(10) {
        let entries = batch
            .iter()
            .enumerate()
            .map(|(n, receipt)| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(n.to_string())
                    .receipt_handle(receipt)
                    .visibility_timeout(0)
                    .build()
                    .expect("id and receipt handle are set")
            })
            .collect();
        match sqs
            .change_message_visibility_batch()
            .queue_url(queue)
            .set_entries(Some(entries))
            .send()
            .await
        {
            Ok(output) => failed += output.failed().len(),
            Err(_) => failed += batch.len(),
        }
    }
    match failed {
        0 => Ok(()),
        failed => Err(CliError::Incomplete(format!(
            "{failed} message(s) stay hidden for up to {LIST_HIDE_SECONDS} s: they could not be made visible again"
        ))),
    }
}

/// `archgate dlq redrive`: each message's event sent back — a pipeline event through its
/// handler, a scheduled event to the deployed function it was for; a message is deleted once
/// that answered without an error, and kept (visible again at once) when it did not, or when
/// nothing takes it.
pub async fn redrive(queue: Option<String>) -> Result<(), CliError> {
    let queue = queue_url(queue)?;
    let (config, clients) = configured().await?;
    let pipeline = clients.pipeline(&config);
    let sdk = sdk_config().await?;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let lambda = aws_sdk_lambda::Client::new(&sdk);
    let scheduled = ScheduledFunctions::from_env();
    let mut handled = 0;
    let mut kept: Vec<String> = Vec::new();
    loop {
        let letters = receive(&sqs, &queue, 60).await?;
        if letters.is_empty() {
            break;
        }
        for letter in letters {
            let answer = match &letter.event {
                None => json!({"status": "unrouted", "reason": "no event in the message"}),
                Some(event) if is_scheduled(event) => match scheduled.target_of(&letter) {
                    Ok(function) => invoke(&lambda, function, event).await,
                    Err(reason) => json!({"status": "unrouted", "reason": reason}),
                },
                Some(event) => archgate_testkit::routing::dispatch(&pipeline, event.clone()).await,
            };
            println!("{}  {answer}", letter.message_id);
            let done = matches!(
                answer["status"].as_str(),
                Some("applied" | "ignored" | "invoked")
            );
            if !done {
                kept.push(letter.receipt_handle);
                continue;
            }
            sqs.delete_message()
                .queue_url(&queue)
                .receipt_handle(&letter.receipt_handle)
                .send()
                .await
                .map_err(aws(format!("DeleteMessage on {queue}")))?;
            handled += 1;
        }
    }
    // What stays is visible again at once, for the next look.
    show_again(&sqs, &queue, &kept).await?;
    println!("{handled} handled and deleted, {} kept", kept.len());
    if kept.is_empty() {
        Ok(())
    } else {
        Err(CliError::Incomplete(format!(
            "{} message(s) could not be handled and stay in the queue",
            kept.len()
        )))
    }
}

/// Invokes the deployed `function` with `event` and waits for its answer, as the schedule
/// would have (the pass runs where it is deployed, with its role, not on this machine).
async fn invoke(lambda: &aws_sdk_lambda::Client, function: &str, event: &Value) -> Value {
    let result = lambda
        .invoke()
        .function_name(function)
        .invocation_type(InvocationType::RequestResponse)
        .payload(Blob::new(event.to_string()))
        .send()
        .await;
    match result {
        Err(error) => json!({
            "function": function, "status": "error",
            "error_message": aws_sdk_lambda::error::DisplayErrorContext(&error).to_string(),
        }),
        Ok(output) => {
            let payload = output
                .payload()
                .map(|p| String::from_utf8_lossy(p.as_ref()).into_owned())
                .unwrap_or_default();
            let answer = serde_json::from_str::<Value>(&payload).unwrap_or(Value::String(payload));
            match output.function_error() {
                Some(kind) => json!({"function": function, "status": "error",
                                     "error_type": kind, "answer": answer}),
                None => json!({"function": function, "status": "invoked", "answer": answer}),
            }
        }
    }
}
