//! `archgate dlq`: what landed in the dead-letter queue, and sending it back.

use archgate_cli::local::{default_config, sample_build_context, LocalEnv};
use aws_sdk_sqs::types::MessageAttributeValue;
use serde_json::json;
use std::process::{Command, Output};

fn archgate(env: &LocalEnv, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_archgate"))
        .args(args)
        .envs(env.config.to_env())
        .env("AWS_ENDPOINT_URL", &env.endpoint)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "archgate-local")
        .env("AWS_SECRET_ACCESS_KEY", "archgate-local")
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
