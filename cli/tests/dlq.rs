//! `archgate dlq`: what landed in the dead-letter queue, and sending it back — pipeline events
//! through their handlers, scheduled events to the deployed function they were for.

use crate::text;
use archgate_cli::local::{sample_build_context, LocalEnv};
use archgate_testkit::emulator::{control_api_post, create_lambda_role, ACCOUNT};
use aws_sdk_sqs::types::MessageAttributeValue;
use serde_json::{json, Value};
use std::process::Output;

fn archgate(env: &LocalEnv, args: &[&str], variables: &[(&str, &str)]) -> Output {
    crate::operator(env)
        .args(args)
        .envs(variables.iter().copied())
        .output()
        .expect("archgate runs")
}

/// The installation's dead-letter queue, empty; its URL.
async fn dead_letter_queue(env: &LocalEnv) -> String {
    env.sqs
        .create_queue()
        .queue_name("archgate-dead-letters")
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_owned()
}

/// Puts a message on the queue as EventBridge or Lambda would: `body` and string attributes.
async fn dead_letter(env: &LocalEnv, queue: &str, body: String, attributes: &[(&str, &str)]) {
    let mut send = env.sqs.send_message().queue_url(queue).message_body(body);
    for (name, value) in attributes {
        send = send.message_attributes(
            *name,
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(*value)
                .build()
                .unwrap(),
        );
    }
    send.send().await.unwrap();
}

/// What Lambda sends to an on-failure destination once an asynchronous invocation of
/// `function` failed for good.
fn lambda_record(function: &str, event: &Value) -> String {
    json!({
        "version": "1.0",
        "requestContext": {"condition": "RetriesExhausted", "approximateInvokeCount": 3,
                           "functionArn": format!("{function}:$LATEST")},
        "requestPayload": event,
        "responsePayload": {"errorType": "Archgate.Ledger", "errorMessage": "throttled"}
    })
    .to_string()
}

fn function_arn(env: &LocalEnv, name: &str) -> String {
    format!("arn:aws:lambda:{}:{ACCOUNT}:function:{name}", env.region())
}

/// The schedule's event, as EventBridge sends it to the function.
fn scheduled_event(env: &LocalEnv, rule: &str, n: usize) -> Value {
    json!({"version": "0", "id": format!("schedule-{n}"), "detail-type": "Scheduled Event",
           "source": "aws.events", "account": ACCOUNT, "time": format!("2026-12-07T0{}:00:00Z", n % 10),
           "region": env.region(), "detail": {},
           "resources": [format!("arn:aws:events:{}:{ACCOUNT}:rule/{rule}", env.region())]})
}

/// A deployed function named `name` whose invocations the emulator answers without running
/// code (it echoes the event back).
async fn deployed_function(env: &LocalEnv, name: &str) {
    let role = create_lambda_role(&env.endpoint, &format!("{name}-role")).expect("CreateRole");
    let mut code = std::io::Cursor::new(Vec::new());
    {
        let mut zip = zip::ZipWriter::new(&mut code);
        zip.start_file("bootstrap", zip::write::SimpleFileOptions::default())
            .unwrap();
        std::io::Write::write_all(&mut zip, b"#!/bin/sh\n").unwrap();
        zip.finish().unwrap();
    }
    env.clients
        .lambda()
        .create_function()
        .function_name(name)
        .role(role)
        .runtime(aws_sdk_lambda::types::Runtime::Providedal2023)
        .handler("bootstrap")
        .code(
            aws_sdk_lambda::types::FunctionCode::builder()
                .zip_file(aws_sdk_lambda::primitives::Blob::new(code.into_inner()))
                .build(),
        )
        .send()
        .await
        .expect("CreateFunction");
}

#[tokio::test]
async fn dead_letters_are_listed_with_why_and_sent_back_through_their_handlers() {
    // Given two uploads whose events were given up on — one by EventBridge, one by Lambda
    // after its retries —, a message that holds no event and a scheduled event of a function
    // that is not archgate's
    let env = crate::installation().await;
    let queue = dead_letter_queue(&env).await;
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
    let start_builds = function_arn(&env, "archgate-StartBuilds");
    dead_letter(
        &env,
        &queue,
        undelivered.to_string(),
        &[
            ("ERROR_CODE", "SDK_CLIENT_ERROR"),
            ("ERROR_MESSAGE", "Lambda was throttled"),
        ],
    )
    .await;
    dead_letter(&env, &queue, lambda_record(&start_builds, &failed), &[]).await;
    dead_letter(&env, &queue, "not an event".to_owned(), &[]).await;
    let billing = function_arn(&env, "billing-nightly");
    let foreign = scheduled_event(&env, "billing-nightly", 1).to_string();
    dead_letter(&env, &queue, foreign, &[("TARGET_ARN", &billing)]).await;

    // When the queue is listed
    let list = archgate(&env, &["dlq", "list", "--queue", &queue], &[]);

    // Then each message is there with who gave up and why, and nothing is taken out
    assert!(list.status.success(), "{}", text(&list));
    let listed = text(&list);
    assert!(listed.contains("4 message(s)"), "{listed}");
    assert!(
        listed.contains("SDK_CLIENT_ERROR: Lambda was throttled"),
        "{listed}"
    );
    assert!(
        listed.contains("Archgate.Ledger: throttled (RetriesExhausted after 3 attempts)"),
        "{listed}"
    );

    // When it is redriven (the installation's scheduled functions named)
    let redrive = archgate(
        &env,
        &["dlq", "redrive", "--queue", &queue],
        &[
            ("ARCHGATE_RECONCILER_FUNCTION", "archgate-Reconciler"),
            ("ARCHGATE_RETENTION_FUNCTION", "archgate-RetentionCleanup"),
        ],
    );

    // Then both uploads started their releases; the message without an event and the other
    // function's schedule stay, each with why, and the command says it did not finish
    let redriven = text(&redrive);
    assert_eq!(redrive.status.code(), Some(1), "{redriven}");
    assert!(
        redriven.contains("2 handled and deleted, 2 kept"),
        "{redriven}"
    );
    assert!(
        redriven.contains("billing-nightly, which is not this installation's reconciler"),
        "{redriven}"
    );
    for tag in ["myapp-7.0.0", "myapp-7.0.1"] {
        assert!(
            env.release(tag).await.unwrap().is_some(),
            "{tag} was started"
        );
    }
    let after = archgate(&env, &["dlq", "list", "--queue", &queue], &[]);
    assert!(text(&after).contains("2 message(s)"), "{}", text(&after));
}

// Before the fix `dlq list` received with visibility 0 and stopped when a round added nothing:
// it showed 10 of 25 messages and said "10 message(s)"; `dlq redrive` answered "unrouted" for
// both kinds of scheduled event and kept them forever.
#[tokio::test]
async fn twenty_five_dead_letters_of_four_kinds_are_all_listed_and_all_redriven() {
    // Given the installation's two scheduled functions deployed, and 25 dead letters: uploads
    // EventBridge could not deliver (7) and whose invocations failed for good (6), and the
    // reconciler's and retention's schedules, both ways (6 each)
    let env = crate::installation().await;
    let queue = dead_letter_queue(&env).await;
    let status = control_api_post(
        &env.endpoint,
        "/moto-api/config",
        r#"{"lambda": {"use_docker": false}}"#,
    )
    .expect("the emulator's control API");
    assert_eq!(status, 201);
    let (reconciler, retention) = ("archgate-Reconciler", "archgate-RetentionCleanup");
    deployed_function(&env, reconciler).await;
    deployed_function(&env, retention).await;
    let start_builds = function_arn(&env, "archgate-StartBuilds");
    let mut tags = Vec::new();
    for n in 0..13 {
        let tag = format!("myapp-8.0.{n}");
        let upload = env
            .upload(&format!("releases/{tag}.zip"), sample_build_context(&tag))
            .await
            .unwrap();
        if n < 7 {
            let why = [
                ("ERROR_CODE", "SDK_CLIENT_ERROR"),
                ("TARGET_ARN", &start_builds),
            ];
            dead_letter(&env, &queue, upload.to_string(), &why).await;
        } else {
            dead_letter(&env, &queue, lambda_record(&start_builds, &upload), &[]).await;
        }
        tags.push(tag);
    }
    for n in 0..12 {
        let function = if n % 2 == 0 { reconciler } else { retention };
        let event = scheduled_event(&env, &format!("{function}-schedule"), n);
        let arn = function_arn(&env, function);
        if n < 6 {
            let why = [("ERROR_CODE", "SDK_CLIENT_ERROR"), ("TARGET_ARN", &arn)];
            dead_letter(&env, &queue, event.to_string(), &why).await;
        } else {
            dead_letter(&env, &queue, lambda_record(&arn, &event), &[]).await;
        }
    }

    // When the queue is listed twice
    let first = archgate(&env, &["dlq", "list", "--queue", &queue], &[]);
    let second = archgate(&env, &["dlq", "list", "--queue", &queue], &[]);

    // Then each listing shows all 25 with the queue's own count: the first left none hidden
    for list in [&first, &second] {
        let listed = text(list);
        assert!(list.status.success(), "{listed}");
        assert!(
            listed.contains("25 message(s) in") && listed.contains("(the queue reports 25)"),
            "{listed}"
        );
        let lines = |what: &str| listed.lines().filter(|l| l.contains(what)).count();
        assert_eq!(lines("Object Created (aws.s3)"), 13, "{listed}");
        assert_eq!(lines("Scheduled Event (aws.events)"), 12, "{listed}");
        assert_eq!(lines("  EventBridge "), 13, "{listed}");
        assert_eq!(lines("  Lambda "), 12, "{listed}");
    }

    // When it is redriven with the stack's function names
    let redrive = archgate(
        &env,
        &["dlq", "redrive", "--queue", &queue],
        &[
            ("ARCHGATE_RECONCILER_FUNCTION", reconciler),
            (
                "ARCHGATE_RETENTION_FUNCTION",
                &function_arn(&env, retention),
            ),
        ],
    );

    // Then every upload started its release, each schedule went to the function it was for,
    // and the queue is empty
    let redriven = text(&redrive);
    assert_eq!(redrive.status.code(), Some(0), "{redriven}");
    assert!(
        redriven.contains("25 handled and deleted, 0 kept"),
        "{redriven}"
    );
    let answers: Vec<Value> = redriven
        .lines()
        .filter_map(|l| {
            l.split_once("  ")
                .and_then(|(_, a)| serde_json::from_str(a).ok())
        })
        .collect();
    let invoked = |function: &str| {
        answers
            .iter()
            .filter(|a| a["status"] == "invoked" && a["function"].as_str() == Some(function))
            .count()
    };
    assert_eq!(invoked(reconciler), 6, "{redriven}");
    assert_eq!(invoked(&function_arn(&env, retention)), 6, "{redriven}");
    assert!(
        answers
            .iter()
            .filter(|a| a["status"] == "invoked")
            .all(|a| a["answer"]["detail-type"] == "Scheduled Event"),
        "each function was invoked with its schedule's event: {redriven}"
    );
    for tag in &tags {
        assert!(
            env.release(tag).await.unwrap().is_some(),
            "{tag} was started"
        );
    }
    let after = archgate(&env, &["dlq", "list", "--queue", &queue], &[]);
    assert!(text(&after).contains("0 message(s)"), "{}", text(&after));
}
