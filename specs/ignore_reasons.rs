//! Why an event changes nothing: the stable kind and the log line every "ignored" answer
//! carries.

use archgate::domain::{IgnoreReason, ReleaseKey, ReleaseTag};

#[test]
fn the_answer_carries_the_kind_and_the_log_line() {
    // Given a reason with an untrusted value in it
    let reason = IgnoreReason::ForeignBucket {
        bucket: "someone-else".into(),
        expected: "archgate-sources".into(),
    };
    // When it is answered, then the kind is stable and the text is the log line
    assert_eq!(
        serde_json::to_value(&reason).unwrap(),
        serde_json::json!({
            "kind": "foreign_bucket",
            "reason": "bucket `someone-else` is not the source bucket `archgate-sources`",
        })
    );
}

#[test]
fn several_reasons_are_one_line() {
    let key = |tag: &str| ReleaseKey {
        repository: "app".into(),
        tag: ReleaseTag::parse(tag).unwrap(),
    };
    let reason = IgnoreReason::Several(vec![
        IgnoreReason::UnknownRelease { key: key("a-1") },
        IgnoreReason::ReleaseFailed { key: key("b-1") },
    ]);
    assert_eq!(reason.kind(), "several");
    assert_eq!(
        reason.to_string(),
        "no release app:a-1 in the ledger: not started by archgate; release app:b-1 failed; its scans no longer matter"
    );
}
