//! `archgate dlq list|redrive`: what landed in the dead-letter queue, and sending it back
//! through its handler (the functions' own code, as `replay` runs it).

use super::configured;
use crate::dead_letters::DeadLetter;
use crate::error::CliError;
use crate::local::LocalError;
use archgate::aws::sdk_config;
use archgate::config::DEAD_LETTER_QUEUE;
use aws_sdk_sqs::types::MessageSystemAttributeName;
use std::collections::{BTreeMap, HashMap};

/// Receives rounds before `list` stops looking for messages it has not seen.
const ROUNDS: usize = 20;

fn queue_url(queue: Option<String>) -> Result<String, CliError> {
    match queue.filter(|q| !q.trim().is_empty()) {
        Some(queue) => Ok(queue),
        None => Ok(super::required(DEAD_LETTER_QUEUE)?),
    }
}

/// Up to ten messages, hidden for `visibility` seconds (0: still visible to others).
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
        .message_attribute_names("All")
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await
        .map_err(|e| {
            CliError::Local(LocalError::Aws {
                what: format!("ReceiveMessage on {queue}"),
                source: Box::new(e),
            })
        })?;
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

/// `archgate dlq list`: every message, one line each, leaving the queue as it is.
pub async fn list(queue: Option<String>) -> Result<(), CliError> {
    let queue = queue_url(queue)?;
    let sqs = aws_sdk_sqs::Client::new(&sdk_config().await?);
    let mut seen: BTreeMap<String, DeadLetter> = BTreeMap::new();
    for _ in 0..ROUNDS {
        let before = seen.len();
        for letter in receive(&sqs, &queue, 0).await? {
            seen.entry(letter.message_id.clone()).or_insert(letter);
        }
        if seen.len() == before {
            break;
        }
    }
    for letter in seen.values() {
        println!("{}", letter.describe());
    }
    println!("{} message(s) in {queue}", seen.len());
    Ok(())
}

/// `archgate dlq redrive`: each message's event through its handler; a message is deleted
/// once its handler answered without an error, and kept (visible again in a minute) when it
/// did not, or when nothing handles it.
pub async fn redrive(queue: Option<String>) -> Result<(), CliError> {
    let queue = queue_url(queue)?;
    let (config, clients) = configured().await?;
    let pipeline = clients.pipeline(&config);
    let sqs = aws_sdk_sqs::Client::new(&sdk_config().await?);
    let mut handled = 0;
    let mut kept: Vec<String> = Vec::new();
    loop {
        let letters = receive(&sqs, &queue, 60).await?;
        if letters.is_empty() {
            break;
        }
        for letter in letters {
            let answer = match &letter.event {
                Some(event) => crate::replay::dispatch(&pipeline, event.clone()).await,
                None => {
                    serde_json::json!({"status": "unrouted", "reason": "no event in the message"})
                }
            };
            println!("{}  {answer}", letter.message_id);
            let done = matches!(answer["status"].as_str(), Some("applied" | "ignored"));
            if !done {
                kept.push(letter.receipt_handle);
                continue;
            }
            sqs.delete_message()
                .queue_url(&queue)
                .receipt_handle(&letter.receipt_handle)
                .send()
                .await
                .map_err(|e| {
                    CliError::Local(LocalError::Aws {
                        what: format!("DeleteMessage on {queue}"),
                        source: Box::new(e),
                    })
                })?;
            handled += 1;
        }
    }
    // What stays is visible again at once, for the next look.
    for receipt in &kept {
        let _ = sqs
            .change_message_visibility()
            .queue_url(&queue)
            .receipt_handle(receipt)
            .visibility_timeout(0)
            .send()
            .await;
    }
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
