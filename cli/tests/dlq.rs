//! `archgate dlq`: what landed in the dead-letter queue, and sending it back.

use archgate_cli::local::{default_config, sample_build_context, LocalEnv};
use aws_sdk_sqs::types::MessageAttributeValue;
use serde_json::json;
use std::process::Output;

fn archgate(env: &LocalEnv, args: &[&str]) -> Output {
    crate::operator(env)
        .args(args)
        .output()
        .expect("archgate runs")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test]
async fn dead_letters_are_listed_with_why_and_sent_back_through_their_handlers() {
    // Given two uploads whose events were given up on — one by EventBridge, one by Lambda
    // after its retries — and a message that holds no event
    let env = LocalEnv::start(default_config("native"))
        .await
        .expect("the local AWS emulator is required");
    let queue = env
        .sqs
        .create_queue()
        .queue_name("archgate-dead-letters")
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_owned();
    let undelivered = env
        .upload(
            "releases/myapp-7.0.0.zip",
            sample_build_context("myapp-7.0.0"),
        )
        .await
        .unwrap();
    let failed = env
        .upload(
            "releases/myapp-7.0.1.zip",
            sample_build_context("myapp-7.0.1"),
        )
        .await
        .unwrap();
    let attribute = |value: &str| {
        MessageAttributeValue::builder()
            .data_type("String")
            .string_value(value)
            .build()
            .unwrap()
    };
    env.sqs
        .send_message()
        .queue_url(&queue)
        .message_body(undelivered.to_string())
        .message_attributes("ERROR_CODE", attribute("SDK_CLIENT_ERROR"))
        .message_attributes("ERROR_MESSAGE", attribute("Lambda was throttled"))
        .send()
        .await
        .unwrap();
    let record = json!({
        "version": "1.0",
        "requestContext": {"condition": "RetriesExhausted", "approximateInvokeCount": 3},
        "requestPayload": failed,
        "responsePayload": {"errorType": "Archgate.Ledger", "errorMessage": "throttled"}
    });
    for body in [record.to_string(), "not an event".to_owned()] {
        env.sqs
            .send_message()
            .queue_url(&queue)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }

    // When the queue is listed
    let list = archgate(&env, &["dlq", "list", "--queue", &queue]);

    // Then each message is there with who gave up and why, and nothing is taken out
    assert!(list.status.success(), "{}", text(&list));
    let listed = text(&list);
    assert!(listed.contains("3 message(s)"), "{listed}");
    assert!(
        listed.contains("SDK_CLIENT_ERROR: Lambda was throttled"),
        "{listed}"
    );
    assert!(
        listed.contains("Archgate.Ledger: throttled (RetriesExhausted after 3 attempts)"),
        "{listed}"
    );

    // When it is redriven
    let redrive = archgate(&env, &["dlq", "redrive", "--queue", &queue]);

    // Then both uploads started their releases, and only the message without an event stays
    assert_eq!(redrive.status.code(), Some(1), "{}", text(&redrive));
    assert!(
        text(&redrive).contains("2 handled and deleted, 1 kept"),
        "{}",
        text(&redrive)
    );
    for tag in ["myapp-7.0.0", "myapp-7.0.1"] {
        assert!(
            env.release(tag).await.unwrap().is_some(),
            "{tag} was started"
        );
    }
    let after = archgate(&env, &["dlq", "list", "--queue", &queue]);
    assert!(text(&after).contains("1 message(s)"), "{}", text(&after));
}

// Before the fix `dlq list` received with visibility 0 and stopped when a round added nothing:
// it showed 10 of 25 messages and said "10 message(s)".
#[tokio::test]
async fn every_message_is_listed_with_the_queues_count_and_stays_visible() {
    // Given 25 dead-lettered events
    let env = LocalEnv::start(default_config("native"))
        .await
        .expect("the local AWS emulator is required");
    let queue = env
        .sqs
        .create_queue()
        .queue_name("archgate-dead-letters")
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_owned();
    for n in 0..25 {
        let event = json!({"source": "aws.s3", "detail-type": "Object Created",
            "time": format!("2025-03-14T09:{n:02}:00Z"), "detail": {}});
        env.sqs
            .send_message()
            .queue_url(&queue)
            .message_body(event.to_string())
            .send()
            .await
            .unwrap();
    }

    // When the queue is listed twice
    let first = archgate(&env, &["dlq", "list", "--queue", &queue]);
    let second = archgate(&env, &["dlq", "list", "--queue", &queue]);

    // Then each listing shows all 25 with the queue's own count: the first left none hidden
    for list in [&first, &second] {
        let listed = text(list);
        assert!(list.status.success(), "{listed}");
        assert!(
            listed.contains("25 message(s) in") && listed.contains("(the queue reports 25)"),
            "{listed}"
        );
        assert_eq!(
            listed
                .lines()
                .filter(|l| l.contains("Object Created"))
                .count(),
            25,
            "{listed}"
        );
    }
}
